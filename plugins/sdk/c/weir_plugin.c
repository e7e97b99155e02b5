/* The `processor` world's exports, on the bindings generated into processor.h. */
#include "weir_plugin.h"

#include <stdlib.h>
#include <string.h>

#include "processor.h"

struct weir_outcomes {
    processor_outcomes_t wit;
    size_t outputs_cap, payloads_cap, emitted_cap, rejected_cap;
};

static void *resize(void *ptr, size_t bytes) {
    void *resized = realloc(ptr, bytes);
    if (!resized) abort();
    return resized;
}

/* Grows `ptr` to hold at least `need` elements of `size` bytes, doubling. */
static void *grow(void *ptr, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return ptr;
    size_t next = *cap ? *cap * 2 : 16;
    while (next < need) next *= 2;
    *cap = next;
    return resize(ptr, next * size);
}

static uint16_t port_of(weir_outcomes *out, const char *output) {
    processor_list_string_t *names = &out->wit.outputs;
    size_t len = strlen(output);
    for (size_t i = 0; i < names->len; i++) {
        if (names->ptr[i].len == len && memcmp(names->ptr[i].ptr, output, len) == 0) return (uint16_t)i;
    }
    names->ptr = grow(names->ptr, &out->outputs_cap, names->len + 1, sizeof *names->ptr);
    processor_string_dup(&names->ptr[names->len], output);
    return (uint16_t)names->len++;
}

static void push(weir_outcomes *out, const weir_event *event, const char *output, const char *payload, size_t len) {
    weir_plugin_types_emitted_t *e = &out->wit.emitted;
    uint16_t port = port_of(out, output);
    if (len > 0) {
        e->payloads.ptr = grow(e->payloads.ptr, &out->payloads_cap, e->payloads.len + len, 1);
        memcpy(e->payloads.ptr + e->payloads.len, payload, len);
        e->payloads.len += len;
    }
    if (e->ends.len == out->emitted_cap) {
        /* ends, inputs and ports grow together. */
        size_t cap = out->emitted_cap ? out->emitted_cap * 2 : 16;
        e->ends.ptr = resize(e->ends.ptr, cap * sizeof *e->ends.ptr);
        e->inputs.ptr = resize(e->inputs.ptr, cap * sizeof *e->inputs.ptr);
        e->ports.ptr = resize(e->ports.ptr, cap * sizeof *e->ports.ptr);
        out->emitted_cap = cap;
    }
    e->ends.ptr[e->ends.len++] = (uint32_t)e->payloads.len;
    e->inputs.ptr[e->inputs.len++] = event->index;
    e->ports.ptr[e->ports.len++] = port;
}

void weir_emit(weir_outcomes *out, const weir_event *event, const char *output, const char *payload, size_t len) {
    push(out, event, output, payload, len);
}

void weir_forward(weir_outcomes *out, const weir_event *event, const char *output) {
    push(out, event, output, NULL, 0);
}

void weir_reject(weir_outcomes *out, const weir_event *event, const char *reason) {
    weir_plugin_types_list_rejection_t *r = &out->wit.rejected;
    r->ptr = grow(r->ptr, &out->rejected_cap, r->len + 1, sizeof *r->ptr);
    r->ptr[r->len].input = event->index;
    processor_string_dup(&r->ptr[r->len].reason, reason);
    r->len++;
}

void weir_log(enum weir_level level, const char *message) {
    processor_string_t text;
    processor_string_set(&text, message);
    weir_plugin_host_log((weir_plugin_host_level_t)level, &text);
}

void weir_counter_add(const char *name, uint64_t value) {
    processor_string_t text;
    processor_string_set(&text, name);
    weir_plugin_host_counter_add(&text, value);
}

bool exports_processor_init(processor_string_t *config, processor_string_t *err) {
    char *text = malloc(config->len + 1);
    if (!text) abort();
    memcpy(text, config->ptr, config->len);
    text[config->len] = '\0';
    processor_string_free(config);
    const char *error = weir_init(text);
    free(text);
    if (error) {
        processor_string_dup(err, error);
        return false;
    }
    return true;
}

static weir_event *events;
static size_t events_cap;

void exports_processor_process(processor_batch_t *batch, processor_outcomes_t *ret) {
    size_t count = batch->ends.len;
    events = grow(events, &events_cap, count, sizeof *events);
    uint32_t start = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t end = batch->ends.ptr[i];
        events[i] = (weir_event){(uint32_t)i, (const char *)batch->payloads.ptr + start, end - start,
                                 batch->timestamps.ptr[i]};
        start = end;
    }
    weir_outcomes out = {0};
    port_of(&out, WEIR_MAIN_OUTPUT);
    weir_process(events, count, &out);
    /* The host frees what `ret` points to (cabi_post_process); the batch is ours. */
    *ret = out.wit;
    processor_batch_free(batch);
}
