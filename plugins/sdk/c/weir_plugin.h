/* Write Weir plugins in C: events in, outcomes out.
 *
 * A plugin defines `weir_init` and `weir_process`; this SDK (weir_plugin.c)
 * implements the `processor` world's exports on top of the bindings that
 * `weir plugin build` generates with wit-bindgen's C generator
 * (processor.h), so authors never see the flat batch layout.
 *
 *   const char *weir_init(const char *config) { return NULL; }
 *   void weir_process(const weir_event *events, size_t count, weir_outcomes *out) {
 *       for (size_t i = 0; i < count; i++) weir_forward(out, &events[i], WEIR_MAIN_OUTPUT);
 *   }
 */
#ifndef WEIR_PLUGIN_H
#define WEIR_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The output that feeds the pipeline's next step. */
#define WEIR_MAIN_OUTPUT "out"

/* One input event: a JSON object (not NUL-terminated) inside the batch's
 * buffer, valid until `weir_process` returns. */
typedef struct {
    uint32_t index;
    const char *payload;
    size_t len;
    int64_t timestamp_ms;
} weir_event;

typedef struct weir_outcomes weir_outcomes;

/* --- Implemented by the plugin --- */

/* Builds the plugin from the step's config (NUL-terminated). Returns NULL,
 * or a message that refuses the plugin (the SDK copies it). */
const char *weir_init(const char *config);

/* Handles one batch: emit, forward or reject each event (an event that is
 * none of these is dropped on purpose). */
void weir_process(const weir_event *events, size_t count, weir_outcomes *out);

/* --- Called by the plugin --- */

/* Emits `payload` (one JSON object, `len` bytes) derived from `event` to `output`. */
void weir_emit(weir_outcomes *out, const weir_event *event, const char *output, const char *payload, size_t len);

/* Sends `event` on unchanged: no bytes cross the boundary. */
void weir_forward(weir_outcomes *out, const weir_event *event, const char *output);

/* Refuses `event`: it goes to the dead-letter output with `reason`. */
void weir_reject(weir_outcomes *out, const weir_event *event, const char *reason);

enum weir_level { WEIR_TRACE, WEIR_DEBUG, WEIR_INFO, WEIR_WARN, WEIR_ERROR };

/* Writes a line to the host's log under the plugin's step name. */
void weir_log(enum weir_level level, const char *message);

/* Adds `value` to the plugin's counter `name`. */
void weir_counter_add(const char *name, uint64_t value);

#endif
