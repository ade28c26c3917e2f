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

/* Shared bytes: immutable, counted, freed when the last holder lets go. What a node answers to
 * every GET of its list is the same few megabytes, cached until the state changes; an answer
 * that a slow client reads for minutes holds the cached bytes rather than a copy of its own,
 * and the cache, replaced meanwhile, lets go of them without freeing them from under it. The
 * counts are not atomic: one block is used from the thread of one event loop. */
/* Takes the bytes over (NUL-terminated) into a shared block held once, and leaves the buffer
 * empty; NULL, with the buffer freed, when out of memory. */
char *buf_share(buf *b, size_t *len);
/* One holder more, one less, of a block from buf_share (NULL is fine). */
void buf_shared_hold(const char *data);
void buf_shared_drop(const char *data);
size_t buf_shared_len(const char *data);
/* The holders that are writing the block to a socket: +1, -1 or 0, the count after. The server
 * counts the memory of a block once, from its first writer to its last (http_server.c). */
size_t buf_shared_writers(const char *data, int delta);

#endif
