/* buf: see buf.h. Growth doubles so that building a 1 MB gossip answer costs a handful of
 * reallocations. */
#include "buf.h"

#include <stdarg.h>
#include <stddef.h>
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

/* ---- shared bytes ------------------------------------------------------------------------
 * The count sits in front of the bytes, in the same allocation, so that a holder needs only
 * the pointer to the bytes (what a cache and an evbuffer reference keep anyway). */
typedef struct shared_block {
    size_t holders, writers, len;
    char data[];
} shared_block;

static shared_block *block_of(const char *data) {
    return (shared_block *)(void *)(data - offsetof(shared_block, data));
}

char *buf_share(buf *b, size_t *len) {
    const size_t head = offsetof(shared_block, data);
    /* The block is the buffer's own allocation, grown by the header and the bytes moved up
     * behind it: no second copy of a large list. */
    if (!buf_reserve(b, head)) {
        buf_free(b);
        if (len) *len = 0;
        return NULL;
    }
    size_t n = b->len;
    memmove(b->data + head, b->data, n + 1);
    shared_block *block = (shared_block *)(void *)b->data;
    block->holders = 1;
    block->writers = 0;
    block->len = n;
    memset(b, 0, sizeof *b);
    if (len) *len = n;
    return block->data;
}

void buf_shared_hold(const char *data) {
    if (data) block_of(data)->holders++;
}

void buf_shared_drop(const char *data) {
    if (!data) return;
    shared_block *block = block_of(data);
    if (--block->holders == 0) free(block);
}

size_t buf_shared_len(const char *data) { return data ? block_of(data)->len : 0; }

size_t buf_shared_writers(const char *data, int delta) {
    shared_block *block = block_of(data);
    if (delta > 0) block->writers++;
    else if (delta < 0) block->writers--;
    return block->writers;
}
