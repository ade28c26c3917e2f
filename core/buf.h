/* buf: a growable byte buffer, the one way the core builds bodies before handing them to a
 * host (a malloc'd string for the C API, an evbuffer reference for evhttp). */
#ifndef SHAZBOT_BUF_H
#define SHAZBOT_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct buf {
    char *data;
    size_t len, cap;
    bool failed; /* an allocation failed; the content is incomplete */
} buf;

bool buf_reserve(buf *b, size_t extra);
void buf_add(buf *b, const void *data, size_t len);
void buf_add_str(buf *b, const char *s);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the bytes over (NUL-terminated) and leaves the buffer empty. */
char *buf_take(buf *b, size_t *len);
void buf_free(buf *b);

#endif
