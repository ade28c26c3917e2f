/* buf: see buf.h. Growth doubles so that building a 1 MB gossip answer costs a handful of
 * reallocations. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool buf_reserve(buf *b, size_t extra) {
    if (b->failed) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->failed = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void buf_add(buf *b, const void *data, size_t len) {
    if (!buf_reserve(b, len)) return;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void buf_add_str(buf *b, const char *s) { buf_add(b, s, strlen(s)); }

void buf_printf(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *buf_take(buf *b, size_t *len) {
    if (!buf_reserve(b, 0)) {
        buf_free(b);
        if (len) *len = 0;
        return NULL;
    }
    char *d = b->data;
    if (len) *len = b->len;
    memset(b, 0, sizeof *b);
    return d;
}

void buf_free(buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}
