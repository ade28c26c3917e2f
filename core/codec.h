/* codec: the content codings of HTTP bodies (RFC 9110, 8.4): gzip and zstd written, gzip,
 * deflate and zstd read, and which of them a peer takes.
 *
 * A gossip message is mostly the records of the peers, which the membership caches as one
 * block of JSON until one of them changes (wire.c). Compressed, that block is cached too, as
 * a segment: raw deflate ending on a byte boundary (a sync flush), or a whole zstd frame. A
 * body is then joined from pieces, the text around the records compressed as it comes and
 * the segments by reference, as pigz joins what it compressed in parallel: one gzip member
 * whose CRC-32 is combined from the pieces' own, or zstd frames one after the other (RFC 8878:
 * a zstd stream is one or more frames). Every decoder reads either as one body.
 *
 * Reading is bounded: a body that inflates past the limit stops there, so a small compressed
 * body (a "bomb") never costs more memory than a plain one of the limit's size. */
#ifndef SHAZBOT_CODEC_H
#define SHAZBOT_CODEC_H

#include "buf.h"
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wire_chunk;

/* Bodies below this stay plain. Measured (README, "Compressed gossip"): a body this small,
 * with its headers, fits in one 1,500-byte packet, so compressing it saves no packet; it
 * would cost 5 us of gzip, an eighth of what the node spends on a 100-record request. */
#define CODEC_MIN_SIZE 1024
/* The levels, chosen by measurement on gossip messages of 1,000 and 10,000 records (README):
 * gzip 1 is 7 times smaller at 3.4 ns a byte, level 6 only 15 % smaller at 3.4 times the
 * time; zstd 1 is 8.8 times smaller at 1.1 ns a byte, levels 2 and 3 slower and no smaller. */
#define CODEC_GZIP_LEVEL 1
#define CODEC_ZSTD_LEVEL 1
/* What a node says it reads, in a request's Accept-Encoding and in the Accept-Encoding of its
 * answers (RFC 7694: the codings a server takes in requests). */
#define CODEC_READABLE "zstd, gzip, deflate"

/* The coding's name in headers ("identity" for none). */
const char *codec_name(codec_kind k);

/* The coding a Content-Encoding header names: NULL or "identity" is CODEC_IDENTITY; false
 * for one this node cannot read (a list of several codings included). */
bool codec_from_content_encoding(const char *header, codec_kind *k);

/* The best coding, up to `best`, that an Accept-Encoding header takes (q > 0; "*" takes
 * gzip); CODEC_IDENTITY for NULL or when it takes none of them. */
codec_kind codec_accepted(const char *header, codec_kind best);

/* Compressors and decompressors, kept from one body to the next (one owner, one thread). */
typedef struct codec codec;
codec *codec_new(void);
void codec_free(codec *c); /* NULL is fine */

/* A piece compressed once, joined into any number of bodies of its coding. */
typedef struct codec_segment {
    char *data;     /* shared bytes (buf_share): bodies being written hold them; NULL: none */
    size_t len;
    uint32_t crc;   /* gzip: the CRC-32 of the plain bytes */
    size_t plain_len;
} codec_segment;

/* Compresses `len` bytes into a segment of `k` (gzip or zstd). False when out of memory. */
bool codec_segment_make(codec *c, codec_kind k, const char *data, size_t len, codec_segment *out);
/* Lets go of the segment's bytes (bodies still being written keep their own hold). */
void codec_segment_drop(codec_segment *s);

/* One body being joined. Between begin and end, text and segments in the order they come:
 * text goes into `out` compressed, a segment's bytes the caller places (by reference or
 * copied) where the segment comes, after what `out` holds at that moment. */
typedef struct codec_writer {
    codec *c;
    codec_kind kind;
    uint32_t crc;
    uint64_t plain_len;
} codec_writer;
void codec_writer_begin(codec_writer *w, codec *c, codec_kind k, buf *out);
void codec_writer_text(codec_writer *w, const char *data, size_t len, buf *out);
void codec_writer_segment(codec_writer *w, const codec_segment *s);
void codec_writer_end(codec_writer *w, buf *out);

/* A whole body compressed at once into `out` (out->failed when out of memory). */
void codec_encode(codec *c, codec_kind k, const char *data, size_t len, buf *out);

typedef enum {
    CODEC_DECODED,
    CODEC_OVER_LIMIT, /* inflates past the limit: nothing more is read */
    CODEC_CORRUPT,    /* not a body of that coding, or a truncated one */
    CODEC_NO_MEMORY,
} codec_result;

/* Decodes a body of `k` given in `count` pieces into `out` (empty before; NUL-terminated
 * after), reading at most `limit` bytes of output: its memory is at most the limit plus the
 * decompressor's own state (about 40 KiB for gzip, 200 KiB for zstd). */
codec_result codec_decode(codec *c, codec_kind k, const struct wire_chunk *in, size_t count, size_t limit,
                          buf *out);

#endif
