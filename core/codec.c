/* codec: see codec.h. zlib for gzip and deflate, libzstd for zstd. */
#include "codec.h"

#include "wire.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

struct codec {
    /* Raw deflate at the level, full window: segments and whole bodies. */
    z_stream big;
    bool big_ready;
    /* Raw deflate with a small window and hash: the text around the segments (a few dozen
     * bytes, new in every body). Resetting `big` clears its 64 KiB hash table each time. */
    z_stream small;
    bool small_ready;
    z_stream inflater;
    bool inflater_ready;
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
};

/* ---- names and headers ------------------------------------------------------------------- */

const char *codec_name(codec_kind k) {
    switch (k) {
    case CODEC_GZIP: return "gzip";
    case CODEC_ZSTD: return "zstd";
    case CODEC_DEFLATE: return "deflate";
    default: return "identity";
    }
}

/* The token at `s` of `len` bytes, as a coding: -1 for one this node does not know. */
static int coding_of(const char *s, size_t len) {
    static const struct {
        const char *name;
        codec_kind kind;
    } names[] = {{"identity", CODEC_IDENTITY}, {"gzip", CODEC_GZIP}, {"x-gzip", CODEC_GZIP},
                 {"zstd", CODEC_ZSTD},         {"deflate", CODEC_DEFLATE}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i].name) == len && strncasecmp(s, names[i].name, len) == 0) return (int)names[i].kind;
    return -1;
}

static const char *skip_space(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

bool codec_from_content_encoding(const char *header, codec_kind *k) {
    *k = CODEC_IDENTITY;
    if (!header) return true;
    const char *s = skip_space(header);
    size_t len = strcspn(s, " \t,;");
    const char *rest = skip_space(s + len);
    int coding = coding_of(s, len);
    /* One coding only: a body compressed twice is not something a peer sends. */
    if (*rest != '\0' || coding < 0) return false;
    *k = (codec_kind)coding;
    return true;
}

/* The q of one element's parameters (";q=0.5"): 1 when absent, 0 when unreadable. */
static double quality_of(const char *params, const char *end) {
    for (const char *p = params; p < end; p++) {
        if (*p != ';') continue;
        const char *q = skip_space(p + 1);
        if ((*q == 'q' || *q == 'Q') && q + 1 < end && q[1] == '=') return q + 2 < end ? strtod(q + 2, NULL) : 0;
    }
    return 1;
}

codec_kind codec_accepted(const char *header, codec_kind best) {
    if (!header) return CODEC_IDENTITY;
    bool takes[CODEC_DEFLATE + 1] = {false};
    bool listed[CODEC_DEFLATE + 1] = {false};
    double any = -1; /* the q of "*", -1 when absent */
    for (const char *s = header; *s;) {
        s = skip_space(s);
        const char *end = s + strcspn(s, ",");
        size_t len = strcspn(s, " \t,;");
        if (len > (size_t)(end - s)) len = (size_t)(end - s);
        double q = quality_of(s + len, end);
        int coding = coding_of(s, len);
        if (coding >= 0) {
            listed[coding] = true;
            takes[coding] = q > 0;
        } else if (len == 1 && *s == '*') {
            any = q;
        }
        s = *end ? end + 1 : end;
    }
    /* "*" stands for the codings not named; gzip is the one every HTTP client reads. */
    if (any > 0 && !listed[CODEC_GZIP]) takes[CODEC_GZIP] = true;
    if (best >= CODEC_ZSTD && takes[CODEC_ZSTD]) return CODEC_ZSTD;
    if (best >= CODEC_GZIP && takes[CODEC_GZIP]) return CODEC_GZIP;
    return CODEC_IDENTITY;
}

/* ---- the compressors --------------------------------------------------------------------- */

codec *codec_new(void) { return calloc(1, sizeof(codec)); }

void codec_free(codec *c) {
    if (!c) return;
    if (c->big_ready) deflateEnd(&c->big);
    if (c->small_ready) deflateEnd(&c->small);
    if (c->inflater_ready) inflateEnd(&c->inflater);
    ZSTD_freeCCtx(c->zc);
    ZSTD_freeDCtx(c->zd);
    free(c);
}

static z_stream *deflater(codec *c, bool small) {
    z_stream *z = small ? &c->small : &c->big;
    bool *ready = small ? &c->small_ready : &c->big_ready;
    if (*ready) return deflateReset(z) == Z_OK ? z : NULL;
    memset(z, 0, sizeof *z);
    /* Raw deflate (negative window bits): the gzip header and trailer are written here, so
     * that pieces compressed apart make one member. */
    int rc = small ? deflateInit2(z, CODEC_GZIP_LEVEL, Z_DEFLATED, -9, 1, Z_DEFAULT_STRATEGY)
                   : deflateInit2(z, CODEC_GZIP_LEVEL, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    *ready = rc == Z_OK;
    return *ready ? z : NULL;
}

/* Compresses `len` bytes onto the end of `out`: with Z_SYNC_FLUSH the output ends on a byte
 * boundary after a non-final block, so that the next piece's blocks can follow it; with
 * Z_FINISH it ends the stream. */
static void deflate_onto(codec *c, bool small, const char *data, size_t len, int flush, buf *out) {
    z_stream *z = deflater(c, small);
    if (!z || len > UINT_MAX) {
        out->failed = true;
        return;
    }
    z->next_in = (Bytef *)(uintptr_t)data;
    z->avail_in = (uInt)len;
    size_t room = deflateBound(z, (uLong)len) + 16;
    for (;;) {
        if (!buf_reserve(out, room)) return;
        size_t space = out->cap - out->len - 1;
        if (space > UINT_MAX) space = UINT_MAX;
        z->next_out = (Bytef *)out->data + out->len;
        z->avail_out = (uInt)space;
        int rc = deflate(z, flush);
        out->len += space - z->avail_out;
        out->data[out->len] = '\0';
        if (rc == Z_STREAM_ERROR) {
            out->failed = true;
            return;
        }
        if (flush == Z_FINISH ? rc == Z_STREAM_END : z->avail_in == 0 && z->avail_out > 0) return;
        room = space + 1; /* more than the bound: zlib's flushes can add a few bytes */
    }
}

/* One zstd frame of `len` bytes onto the end of `out`; it names its size and has a checksum. */
static void zstd_onto(codec *c, const char *data, size_t len, buf *out) {
    if (!c->zc) {
        c->zc = ZSTD_createCCtx();
        if (!c->zc || ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, CODEC_ZSTD_LEVEL)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_checksumFlag, 1))) {
            ZSTD_freeCCtx(c->zc);
            c->zc = NULL;
        }
    }
    size_t bound = ZSTD_compressBound(len);
    if (!c->zc || !buf_reserve(out, bound)) {
        out->failed = true;
        return;
    }
    size_t n = ZSTD_compress2(c->zc, out->data + out->len, bound, data, len);
    if (ZSTD_isError(n)) {
        out->failed = true;
        return;
    }
    out->len += n;
    out->data[out->len] = '\0';
}

static void add_le32(buf *out, uint32_t v) {
    unsigned char b[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff};
    buf_add(out, b, 4);
}

/* RFC 1952: ID1 ID2, CM 8 (deflate), no flags, no time, XFL 4 (the fastest level), OS 3
 * (Unix). */
static void gzip_header(buf *out) {
    static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3};
    buf_add(out, header, sizeof header);
}

/* The CRC-32 and the length modulo 2^32 of the plain bytes. */
static void gzip_trailer(uint32_t crc, uint64_t len, buf *out) {
    add_le32(out, crc);
    add_le32(out, (uint32_t)len);
}

bool codec_segment_make(codec *c, codec_kind k, const char *data, size_t len, codec_segment *out) {
    *out = (codec_segment){0};
    buf b = {0};
    if (k == CODEC_GZIP) {
        deflate_onto(c, false, data, len, Z_SYNC_FLUSH, &b);
        out->crc = (uint32_t)crc32_z(0, (const Bytef *)data, len);
    } else {
        zstd_onto(c, data, len, &b);
    }
    if (b.failed) {
        buf_free(&b);
        return false;
    }
    out->plain_len = len;
    out->data = buf_share(&b, &out->len);
    return out->data != NULL;
}

void codec_segment_drop(codec_segment *s) {
    buf_shared_drop(s->data);
    *s = (codec_segment){0};
}

void codec_writer_begin(codec_writer *w, codec *c, codec_kind k, buf *out) {
    *w = (codec_writer){.c = c, .kind = k};
    if (k == CODEC_GZIP) gzip_header(out);
}

void codec_writer_text(codec_writer *w, const char *data, size_t len, buf *out) {
    if (len == 0) return;
    w->plain_len += len;
    if (w->kind == CODEC_GZIP) {
        w->crc = (uint32_t)crc32_z(w->crc, (const Bytef *)data, len);
        deflate_onto(w->c, true, data, len, Z_SYNC_FLUSH, out);
    } else if (w->kind == CODEC_ZSTD) {
        zstd_onto(w->c, data, len, out);
    } else {
        buf_add(out, data, len);
    }
}

void codec_writer_segment(codec_writer *w, const codec_segment *s) {
    w->plain_len += s->plain_len;
    if (w->kind == CODEC_GZIP) w->crc = (uint32_t)crc32_combine(w->crc, s->crc, (z_off_t)s->plain_len);
}

void codec_writer_end(codec_writer *w, buf *out) {
    if (w->kind != CODEC_GZIP) return;
    /* An empty final block (two bytes) ends the deflate stream after the last sync flush. */
    deflate_onto(w->c, true, "", 0, Z_FINISH, out);
    gzip_trailer(w->crc, w->plain_len, out);
}

void codec_encode(codec *c, codec_kind k, const char *data, size_t len, buf *out) {
    if (k == CODEC_GZIP) {
        gzip_header(out);
        deflate_onto(c, false, data, len, Z_FINISH, out);
        gzip_trailer((uint32_t)crc32_z(0, (const Bytef *)data, len), len, out);
    } else if (k == CODEC_ZSTD) {
        zstd_onto(c, data, len, out);
    } else {
        buf_add(out, data, len);
    }
}

/* ---- the decompressors ------------------------------------------------------------------- */

/* `n` bytes of the body from offset `at` (whichever pieces they lie in) into `to`; false when
 * the body is shorter. */
static bool body_bytes(const wire_chunk *in, size_t count, size_t at, unsigned char *to, size_t n) {
    for (size_t i = 0; i < count && n > 0; i++) {
        if (at >= in[i].len) {
            at -= in[i].len;
            continue;
        }
        size_t take = in[i].len - at < n ? in[i].len - at : n;
        memcpy(to, in[i].data + at, take);
        to += take;
        n -= take;
        at = 0;
    }
    return n == 0;
}

/* Gives `out` room for `room` bytes of output (and the NUL after them), no more: growth is
 * the caller's, capped at the limit. */
static bool output_room(buf *out, size_t room) {
    if (out->cap >= room + 1) return true;
    char *d = realloc(out->data, room + 1);
    if (!d) return false;
    out->data = d;
    out->cap = room + 1;
    return true;
}

/* When the output is full: twice the room, up to the limit and one byte past it (a body that
 * fills that byte is over the limit), or the reason it cannot grow. */
static codec_result grow_output(buf *out, size_t *room, size_t limit) {
    if (out->len < *room) return CODEC_DECODED;
    if (*room == limit + 1) return CODEC_OVER_LIMIT;
    *room = *room > (limit + 1) / 2 ? limit + 1 : 2 * *room;
    return output_room(out, *room) ? CODEC_DECODED : CODEC_NO_MEMORY;
}

static codec_result inflate_body(codec *c, codec_kind k, const wire_chunk *in, size_t count, size_t limit,
                                 buf *out) {
    size_t total = 0;
    for (size_t i = 0; i < count; i++) total += in[i].len;
    unsigned char head[2], tail[4];
    int bits = 16 + MAX_WBITS; /* gzip */
    if (k == CODEC_DEFLATE) {
        /* HTTP's deflate is the zlib format (RFC 9110, 8.4.1.2); some clients send raw deflate,
         * which a valid zlib header tells apart. */
        bool zlib_header = body_bytes(in, count, 0, head, 2) && (head[0] & 0x0f) == 8 && (head[0] * 256 + head[1]) % 31 == 0;
        bits = zlib_header ? MAX_WBITS : -MAX_WBITS;
    }
    z_stream *z = &c->inflater;
    if (!c->inflater_ready) {
        memset(z, 0, sizeof *z);
        if (inflateInit2(z, bits) != Z_OK) return CODEC_NO_MEMORY;
        c->inflater_ready = true;
    } else if (inflateReset2(z, bits) != Z_OK) {
        return CODEC_NO_MEMORY;
    }
    /* A first size from the gzip trailer (the length modulo 2^32, the sender's word), else
     * four times the input; then doubling, up to the limit and one byte past it, which is how
     * a body over the limit shows. */
    size_t room = 4 * total;
    if (k == CODEC_GZIP && body_bytes(in, count, total >= 4 ? total - 4 : 0, tail, 4))
        room = (size_t)tail[0] | (size_t)tail[1] << 8 | (size_t)tail[2] << 16 | (size_t)tail[3] << 24;
    if (room < 4096) room = 4096;
    if (room > limit + 1) room = limit + 1;
    if (!output_room(out, room)) return CODEC_NO_MEMORY;
    bool ended = false;
    for (size_t i = 0; i < count; i++) {
        z->next_in = (Bytef *)(uintptr_t)in[i].data;
        z->avail_in = (uInt)in[i].len; /* pieces of a network buffer: far below 4 GiB */
        while (z->avail_in > 0) {
            if (ended) {
                /* gzip allows members one after the other (RFC 1952, 2.2); deflate does not. */
                if (k != CODEC_GZIP || inflateReset(z) != Z_OK) return CODEC_CORRUPT;
                ended = false;
            }
            codec_result grown = grow_output(out, &room, limit);
            if (grown != CODEC_DECODED) return grown;
            z->next_out = (Bytef *)out->data + out->len;
            z->avail_out = (uInt)(room - out->len);
            uInt before_in = z->avail_in, before_out = z->avail_out;
            int rc = inflate(z, Z_NO_FLUSH);
            out->len += before_out - z->avail_out;
            if (rc == Z_STREAM_END) ended = true;
            else if (rc == Z_MEM_ERROR) return CODEC_NO_MEMORY;
            else if (rc != Z_OK && rc != Z_BUF_ERROR) return CODEC_CORRUPT;
            else if (z->avail_in == before_in && z->avail_out == before_out) return CODEC_CORRUPT;
        }
    }
    /* The input is used up but output may still be pending inside zlib (the last call filled
     * the space): drained here, within the limit. */
    while (!ended) {
        codec_result grown = grow_output(out, &room, limit);
        if (grown != CODEC_DECODED) return grown;
        z->next_out = (Bytef *)out->data + out->len;
        z->avail_out = (uInt)(room - out->len);
        uInt before_out = z->avail_out;
        int rc = inflate(z, Z_NO_FLUSH);
        out->len += before_out - z->avail_out;
        if (rc == Z_STREAM_END) ended = true;
        else if (z->avail_out == before_out) return CODEC_CORRUPT; /* truncated: nothing more comes */
        else if (rc != Z_OK && rc != Z_BUF_ERROR) return CODEC_CORRUPT;
    }
    return out->len > limit ? CODEC_OVER_LIMIT : CODEC_DECODED;
}

/* The plain size the frames of a zstd body declare, summed: ZSTD_CONTENTSIZE_UNKNOWN when
 * one does not, ZSTD_CONTENTSIZE_ERROR when the body is not made of frames. */
static unsigned long long zstd_declared_size(const char *src, size_t n) {
    unsigned long long total = 0;
    bool unknown = false;
    while (n > 0) {
        size_t frame = ZSTD_findFrameCompressedSize(src, n);
        unsigned long long size = ZSTD_getFrameContentSize(src, n);
        if (ZSTD_isError(frame) || size == ZSTD_CONTENTSIZE_ERROR) return ZSTD_CONTENTSIZE_ERROR;
        if (size == ZSTD_CONTENTSIZE_UNKNOWN) unknown = true;
        else if ((total += size) < size) return ZSTD_CONTENTSIZE_ERROR; /* overflows: not a body */
        src += frame;
        n -= frame;
    }
    return unknown ? ZSTD_CONTENTSIZE_UNKNOWN : total;
}

/* zstd frames say how large they are (ours do), so a body is decoded in one call into a
 * block of exactly that size, and one that says it is over the limit is refused unread. A
 * frame that does not say gets the limit and a byte: decoding stops when it is full. Either
 * way the decoder writes straight into that block, and needs no window of its own. */
static codec_result unzstd_body(codec *c, const wire_chunk *in, size_t count, size_t limit, buf *out) {
    buf joined = {0};
    const char *src = count ? in[0].data : "";
    size_t n = count ? in[0].len : 0;
    if (count > 1) {
        for (size_t i = 0; i < count; i++) buf_add(&joined, in[i].data, in[i].len);
        if (joined.failed) return CODEC_NO_MEMORY;
        src = joined.data;
        n = joined.len;
    }
    codec_result result = CODEC_DECODED;
    unsigned long long said = zstd_declared_size(src, n);
    bool known = said != ZSTD_CONTENTSIZE_UNKNOWN;
    size_t room = known ? (size_t)said : limit + 1;
    if (said == ZSTD_CONTENTSIZE_ERROR || n == 0) result = CODEC_CORRUPT;
    else if (known && said > limit) result = CODEC_OVER_LIMIT;
    else if (!c->zd && !(c->zd = ZSTD_createDCtx())) result = CODEC_NO_MEMORY;
    else if (!output_room(out, room)) result = CODEC_NO_MEMORY;
    if (result == CODEC_DECODED) {
        size_t got = ZSTD_decompressDCtx(c->zd, out->data, room, src, n);
        if (ZSTD_isError(got))
            result = !known && ZSTD_getErrorCode(got) == ZSTD_error_dstSize_tooSmall ? CODEC_OVER_LIMIT : CODEC_CORRUPT;
        else if (got > limit) result = CODEC_OVER_LIMIT;
        else out->len = got;
    }
    buf_free(&joined);
    return result;
}

codec_result codec_decode(codec *c, codec_kind k, const wire_chunk *in, size_t count, size_t limit, buf *out) {
    codec_result r;
    if (k == CODEC_ZSTD) {
        r = unzstd_body(c, in, count, limit, out);
    } else if (k == CODEC_GZIP || k == CODEC_DEFLATE) {
        r = inflate_body(c, k, in, count, limit, out);
    } else {
        size_t total = 0;
        for (size_t i = 0; i < count; i++) total += in[i].len;
        r = total > limit ? CODEC_OVER_LIMIT : CODEC_DECODED;
        for (size_t i = 0; r == CODEC_DECODED && i < count; i++) buf_add(out, in[i].data, in[i].len);
        if (out->failed) r = CODEC_NO_MEMORY;
    }
    if (r == CODEC_DECODED && !output_room(out, out->len)) r = CODEC_NO_MEMORY;
    if (r != CODEC_DECODED) buf_free(out);
    else out->data[out->len] = '\0';
    return r;
}
