/* shared_body: bytes that several holders read at once, freed when the last lets go. A
 * fan-out sends one message to many targets: each transfer keeps a reference to the same
 * bytes rather than a copy of its own (2,000 targets once meant 2,000 copies of the state).
 * The node has one thread: the count needs no atomics. */
#ifndef SHAZBOT_SHARED_BODY_H
#define SHAZBOT_SHARED_BODY_H

#include "buf.h"
#include "codec.h"

#include <stddef.h>

typedef struct shared_body shared_body;

/* Takes over the bytes of `b` (no copy; `b` is left empty either way), with one reference.
 * NULL when `b` failed or out of memory. */
shared_body *shared_body_take(buf *b);
/* A copy of `len` bytes, with one reference; NULL when out of memory. */
shared_body *shared_body_copy(const char *data, size_t len);
/* One more reference; returns `s`. */
shared_body *shared_body_ref(shared_body *s);
/* One reference fewer; the last frees the bytes. NULL is fine. */
void shared_body_unref(shared_body *s);
/* NUL-terminated, valid while a reference is held. */
const char *shared_body_data(const shared_body *s);
size_t shared_body_len(const shared_body *s);
/* The bytes in coding `k` (gzip or zstd), compressed by `c` the first time a holder asks and
 * kept for the others, so that a fan-out compresses its message once; valid while a
 * reference is held. NULL when out of memory. */
const char *shared_body_coded(shared_body *s, codec *c, codec_kind k, size_t *len);

#endif
