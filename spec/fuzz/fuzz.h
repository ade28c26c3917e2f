/* What the libFuzzer harnesses of spec/fuzz share: a failed property aborts (libFuzzer then
 * keeps the input as a crash artifact), a strict JSON check, and a body cut into pieces the
 * way a network buffer may hold it. */
#ifndef SHAZBOT_FUZZ_H
#define SHAZBOT_FUZZ_H

#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

/* Not assert(): it must hold in every build, NDEBUG or not. */
#define FUZZ_ASSERT(cond, ...)                                                                  \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "%s:%d: property violated: %s\n    ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fputc('\n', stderr);                                                                \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

/* One JSON text and nothing else, strings valid UTF-8: yajl's defaults, without callbacks. */
static inline bool fuzz_json_valid(const char *text, size_t len) {
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    if (!h) abort();
    bool ok = yajl_parse(h, (const unsigned char *)text, len) == yajl_status_ok &&
              yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    return ok;
}

/* Cuts `len` bytes into pieces chosen by `seed`: 0 gives one byte a piece, otherwise lengths
 * of 0 to 2 * (seed % 32) + 1 bytes from a small generator (empty pieces included: a network
 * buffer may hold one). Returns how many pieces were written to `out` (room for 2 * len + 1). */
static inline size_t fuzz_split(const char *data, size_t len, uint8_t seed, wire_chunk *out) {
    size_t n = 0, at = 0;
    uint32_t x = 0x9e3779b9u ^ seed;
    while (at < len) {
        size_t piece = 1;
        if (seed) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            piece = x % (2 * (seed % 32) + 2);
            /* Never two empty pieces in a row: that bounds the count. */
            if (piece == 0 && n > 0 && out[n - 1].len == 0) piece = 1;
        }
        if (piece > len - at) piece = len - at;
        out[n++] = (wire_chunk){data + at, piece};
        at += piece;
    }
    if (n == 0) out[n++] = (wire_chunk){data, 0};
    return n;
}

/* The pieces of fuzz_split in a malloc'd array. */
static inline wire_chunk *fuzz_split_alloc(const char *data, size_t len, uint8_t seed, size_t *count) {
    wire_chunk *c = malloc((2 * len + 1) * sizeof *c);
    if (!c) abort();
    *count = fuzz_split(data, len, seed, c);
    return c;
}

/* Both messages parsed from the same body hold exactly the same entries. */
static inline void fuzz_same_message(const wire_message *a, const wire_message *b) {
    FUZZ_ASSERT(a->count == b->count, "%zu entries whole, %zu in pieces", a->count, b->count);
    FUZZ_ASSERT(a->control_online == b->control_online, "control online differs");
    for (size_t i = 0; i < a->count; i++) {
        const wire_entry *x = &a->entries[i], *y = &b->entries[i];
        FUZZ_ASSERT(x->status == y->status && x->e.url_len == y->e.url_len &&
                        memcmp(x->e.base_url, y->e.base_url, x->e.url_len) == 0 &&
                        x->e.monitor == y->e.monitor && x->e.last_update_ok == y->e.last_update_ok &&
                        (!x->e.last_update_ok || x->e.last_update == y->e.last_update),
                    "entry %zu differs", i);
    }
}

#endif
