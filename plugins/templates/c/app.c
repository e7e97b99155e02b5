/* Vital-signs early warning: scores heart rate, respiration rate, SpO2 and
 * temperature on early-warning bands and sends an alert to the `alerts`
 * output when the total reaches the threshold (the step's `config`, 5 by
 * default). An event without one of the fields is refused with the reason.
 *
 * JSON is tokenized with jsmn (Debian's libjsmn-dev, header-only).
 *
 * Build: `weir plugin build`; test: `weir plugin test . --input
 * sample/input.ndjson --expect sample/expected.ndjson`.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#include "jsmn.h"
#include "weir_plugin.h"

typedef struct {
    double edge;
    int points;
} band;

static const band HR[] = {{40, 3}, {50, 1}, {90, 0}, {110, 1}, {130, 2}, {INFINITY, 3}};
static const band RR[] = {{8, 3}, {11, 1}, {20, 0}, {24, 2}, {INFINITY, 3}};
static const band SPO2[] = {{91, 3}, {93, 2}, {95, 1}, {INFINITY, 0}};
static const band TEMP[] = {{35.0, 3}, {36.0, 1}, {38.0, 0}, {39.0, 1}, {INFINITY, 2}};

static int threshold = 5;
static char reason[128];

/* Points for `value`: the first band whose upper edge is at or above it. */
static int points(double value, const band *bands) {
    while (value > bands->edge) bands++;
    return bands->points;
}

/* The index of the token after token `i` and everything inside it. */
static int skip(const jsmntok_t *t, int i) {
    int n = t[i].size, j = i + 1;
    if (t[i].type == JSMN_OBJECT) n *= 2;
    if (t[i].type == JSMN_OBJECT || t[i].type == JSMN_ARRAY) {
        while (n-- > 0) j = skip(t, j);
    }
    return j;
}

/* The value token of top-level key `key`, or -1. */
static int field(const char *js, const jsmntok_t *t, const char *key) {
    size_t len = strlen(key);
    for (int i = 1, k = 0; k < t[0].size; k++) {
        if ((size_t)(t[i].end - t[i].start) == len && memcmp(js + t[i].start, key, len) == 0) return i + 1;
        i = skip(t, i + 1);
    }
    return -1;
}

/* A JSON number as a double: short numbers exactly by Clinger's fast path
 * (at most 15 digits, a power of ten up to 22: one correctly rounded
 * operation), the rest through strtod, which costs far more in wasi-libc. */
static double to_double(const char *s, const char *end) {
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *p = s;
    int negative = *p == '-', digits = 0, exponent = 0;
    uint64_t mantissa = 0;
    if (negative) p++;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) mantissa = mantissa * 10 + (uint64_t)(*p - '0');
    if (p < end && *p == '.') {
        for (p++; p < end && *p >= '0' && *p <= '9'; p++, digits++, exponent--) {
            mantissa = mantissa * 10 + (uint64_t)(*p - '0');
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        int sign = 1, e = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) sign = *p++ == '-' ? -1 : 1;
        for (; p < end && *p >= '0' && *p <= '9' && e < 1000; p++) e = e * 10 + (*p - '0');
        exponent += sign * e;
    }
    if (p != end || digits > 15 || exponent < -22 || exponent > 22) return strtod(s, NULL);
    double value = (double)mantissa;
    value = exponent < 0 ? value / pow10[-exponent] : value * pow10[exponent];
    return negative ? -value : value;
}

static const char *number(const char *js, const jsmntok_t *t, const char *key, double *value) {
    int i = field(js, t, key);
    if (i < 0) {
        snprintf(reason, sizeof reason, "missing field `%s`", key);
        return reason;
    }
    char c = js[t[i].start];
    if (t[i].type != JSMN_PRIMITIVE || !(c == '-' || (c >= '0' && c <= '9'))) {
        snprintf(reason, sizeof reason, "field `%s` is not a number", key);
        return reason;
    }
    *value = to_double(js + t[i].start, js + t[i].end);
    return NULL;
}

const char *weir_init(const char *config) {
    while (*config == ' ' || *config == '\n' || *config == '\t') config++;
    if (*config == '\0') return NULL;
    char *end;
    long value = strtol(config, &end, 10);
    while (*end == ' ' || *end == '\n' || *end == '\t') end++;
    if (*end != '\0') return "config: the threshold must be a whole number";
    threshold = (int)value;
    return NULL;
}

static jsmntok_t small[256];

static const char *check(const weir_event *event, weir_outcomes *out) {
    jsmn_parser parser;
    jsmntok_t *tokens = small;
    unsigned int cap = sizeof small / sizeof *small;
    int n;
    for (;;) {
        jsmn_init(&parser);
        n = jsmn_parse(&parser, event->payload, event->len, tokens, cap);
        if (n != JSMN_ERROR_NOMEM) break;
        cap *= 4;
        tokens = tokens == small ? malloc(cap * sizeof *tokens) : realloc(tokens, cap * sizeof *tokens);
        if (!tokens) abort();
    }
    const char *why = NULL;
    const char *js = event->payload;
    double hr, rr, spo2, temp;
    int patient = -1;
    if (n < 1 || tokens[0].type != JSMN_OBJECT) {
        why = "invalid event: not a JSON object";
    } else if ((patient = field(js, tokens, "patient")) < 0) {
        why = "missing field `patient`";
    } else if (tokens[patient].type != JSMN_STRING) {
        why = "field `patient` is not a string";
    } else if (!(why = number(js, tokens, "hr", &hr)) && !(why = number(js, tokens, "rr", &rr)) &&
               !(why = number(js, tokens, "spo2", &spo2)) && !(why = number(js, tokens, "temp", &temp))) {
        int score = points(hr, HR) + points(rr, RR) + points(spo2, SPO2) + points(temp, TEMP);
        if (score >= threshold) {
            /* The patient's string token as written, quotes and escapes included. */
            const char *name = js + tokens[patient].start - 1;
            int name_len = tokens[patient].end - tokens[patient].start + 2;
            char alert[512];
            int len = snprintf(alert, sizeof alert, "{\"patient\":%.*s,\"score\":%d,\"level\":\"%s\"}", name_len,
                               name, score, score >= 7 ? "high" : "medium");
            if (len < 0 || (size_t)len >= sizeof alert) {
                why = "field `patient` is too long";
            } else {
                weir_emit(out, event, "alerts", alert, (size_t)len);
            }
        }
    }
    if (tokens != small) free(tokens);
    return why;
}

void weir_process(const weir_event *events, size_t count, weir_outcomes *out) {
    for (size_t i = 0; i < count; i++) {
        const char *why = check(&events[i], out);
        if (why) weir_reject(out, &events[i], why);
    }
}
