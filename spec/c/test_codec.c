/* codec: which coding a header takes, that what the node writes is what zlib's and libzstd's
 * own decoders read (a gzip member, zstd frames), pieces joined included, that its decoder
 * reads what they write, and the limit: a body that inflates past it is refused, whatever it
 * claims. */
#include "check.h"
#include "codec.h"
#include "wire.h"

#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#define NOW 1795478695140LL

static void test_headers(void) {
    codec_kind k;
    CHECK(codec_from_content_encoding(NULL, &k) && k == CODEC_IDENTITY);
    CHECK(codec_from_content_encoding("identity", &k) && k == CODEC_IDENTITY);
    CHECK(codec_from_content_encoding("gzip", &k) && k == CODEC_GZIP);
    CHECK(codec_from_content_encoding(" x-gzip ", &k) && k == CODEC_GZIP);
    CHECK(codec_from_content_encoding("ZSTD", &k) && k == CODEC_ZSTD);
    CHECK(codec_from_content_encoding("deflate", &k) && k == CODEC_DEFLATE);
    CHECK(!codec_from_content_encoding("br", &k));
    CHECK(!codec_from_content_encoding("gzip, identity", &k)); /* two codings: not sent by a peer */
    CHECK(!codec_from_content_encoding("gzipx", &k));

    CHECK_INT(codec_accepted(NULL, CODEC_ZSTD), CODEC_IDENTITY);
    CHECK_INT(codec_accepted("zstd, gzip", CODEC_ZSTD), CODEC_ZSTD);
    CHECK_INT(codec_accepted("zstd, gzip", CODEC_GZIP), CODEC_GZIP); /* the setting caps it */
    CHECK_INT(codec_accepted("zstd, gzip", CODEC_IDENTITY), CODEC_IDENTITY);
    CHECK_INT(codec_accepted("gzip, deflate, br", CODEC_ZSTD), CODEC_GZIP); /* Node's fetch */
    CHECK_INT(codec_accepted("deflate, gzip, br, zstd", CODEC_ZSTD), CODEC_ZSTD); /* curl's "" */
    CHECK_INT(codec_accepted("zstd;q=0, gzip;q=0.5", CODEC_ZSTD), CODEC_GZIP);
    CHECK_INT(codec_accepted("zstd;q=0.001", CODEC_ZSTD), CODEC_ZSTD);
    CHECK_INT(codec_accepted("gzip;q=0", CODEC_ZSTD), CODEC_IDENTITY);
    CHECK_INT(codec_accepted("GZip ; Q=1", CODEC_ZSTD), CODEC_GZIP);
    CHECK_INT(codec_accepted("*", CODEC_ZSTD), CODEC_GZIP);
    CHECK_INT(codec_accepted("*, gzip;q=0", CODEC_ZSTD), CODEC_IDENTITY);
    CHECK_INT(codec_accepted("identity, br", CODEC_ZSTD), CODEC_IDENTITY);
    CHECK_INT(codec_accepted("", CODEC_ZSTD), CODEC_IDENTITY);
    CHECK_STR(codec_name(CODEC_ZSTD), "zstd");
    CHECK_STR(codec_name(CODEC_IDENTITY), "identity");
}

/* A JSON-like text of `n` bytes that compresses as gossip does. */
static char *sample(size_t n) {
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) s[i] = "{\"baseUrl\":\"http://10.0.0.1:3000/\",\"monitor\":false}"[i % 50] + (char)(i / 977 % 3);
    s[n] = '\0';
    return s;
}

/* zlib's own gzip reader (inflate with a gzip wrapper, which checks the CRC-32 and length of
 * the trailer), one member. */
static bool zlib_gunzip(const char *in, size_t len, buf *out) {
    z_stream z = {0};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return false;
    unsigned char chunk[16384];
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    int rc;
    do {
        z.next_out = chunk;
        z.avail_out = sizeof chunk;
        rc = inflate(&z, Z_NO_FLUSH);
        buf_add(out, chunk, sizeof chunk - z.avail_out);
    } while (rc == Z_OK);
    bool ok = rc == Z_STREAM_END && z.avail_in == 0;
    inflateEnd(&z);
    return ok;
}

/* libzstd's one-call decoder over every frame. */
static bool zstd_plain(const char *in, size_t len, size_t expect, buf *out) {
    buf_reserve(out, expect + 1);
    size_t n = ZSTD_decompress(out->data, expect + 1, in, len);
    if (ZSTD_isError(n)) return false;
    out->len = n;
    return true;
}

static codec_result decode_whole(codec *c, codec_kind k, const char *data, size_t len, size_t limit, buf *out) {
    wire_chunk whole = {data, len};
    return codec_decode(c, k, &whole, 1, limit, out);
}

static void test_round_trip(codec *c) {
    size_t sizes[] = {0, 1, 1000, 100000, 900000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        char *plain = sample(sizes[i]);
        buf gz = {0}, zs = {0}, back = {0}, other = {0};
        codec_encode(c, CODEC_GZIP, plain, sizes[i], &gz);
        codec_encode(c, CODEC_ZSTD, plain, sizes[i], &zs);
        CHECK(!gz.failed && !zs.failed);
        CHECK(zlib_gunzip(gz.data, gz.len, &other) && other.len == sizes[i] && memcmp(other.data ? other.data : "", plain, sizes[i]) == 0);
        buf_free(&other);
        CHECK(zstd_plain(zs.data, zs.len, sizes[i], &other) && other.len == sizes[i] && memcmp(other.data, plain, sizes[i]) == 0);
        buf_free(&other);
        if (sizes[i] >= 100000) CHECK(gz.len * 5 < sizes[i] && zs.len * 5 < sizes[i]);
        /* Our decoder: whole, and gzip a byte at a time (a network buffer's pieces). */
        CHECK_INT(decode_whole(c, CODEC_GZIP, gz.data, gz.len, sizes[i], &back), CODEC_DECODED);
        CHECK(back.len == sizes[i] && memcmp(back.data, plain, sizes[i]) == 0 && back.data[back.len] == '\0');
        buf_free(&back);
        CHECK_INT(decode_whole(c, CODEC_ZSTD, zs.data, zs.len, sizes[i], &back), CODEC_DECODED);
        CHECK(back.len == sizes[i] && memcmp(back.data, plain, sizes[i]) == 0);
        buf_free(&back);
        if (sizes[i] == 1000) {
            wire_chunk *bytes = calloc(gz.len, sizeof *bytes);
            for (size_t b = 0; b < gz.len; b++) bytes[b] = (wire_chunk){gz.data + b, 1};
            CHECK_INT(codec_decode(c, CODEC_GZIP, bytes, gz.len, 1000, &back), CODEC_DECODED);
            CHECK(back.len == 1000 && memcmp(back.data, plain, 1000) == 0);
            buf_free(&back);
            for (size_t b = 0; b < zs.len; b++) bytes[b] = (wire_chunk){zs.data + b, 1};
            CHECK_INT(codec_decode(c, CODEC_ZSTD, bytes, zs.len, 1000, &back), CODEC_DECODED);
            CHECK(back.len == 1000 && memcmp(back.data, plain, 1000) == 0);
            buf_free(&back);
            free(bytes);
        }
        buf_free(&gz);
        buf_free(&zs);
        free(plain);
    }
}

/* A body joined from text and segments, as wire_list_parts_coded joins a list, is one body
 * to the standard decoders. */
static void test_joined(codec *c) {
    char *big = sample(200000);
    const char *texts[] = {"{\"message\":\"gossip\",\"online\":[", "],\"offline\":[", "]}"};
    for (codec_kind k = CODEC_GZIP; k <= CODEC_ZSTD; k++) {
        codec_segment seg[2];
        CHECK(codec_segment_make(c, k, big, 200000, &seg[0]));
        CHECK(codec_segment_make(c, k, big + 1000, 5000, &seg[1]));
        buf body = {0}, piece = {0}, plain = {0};
        codec_writer w;
        codec_writer_begin(&w, c, k, &body);
        for (int i = 0; i < 3; i++) {
            codec_writer_text(&w, texts[i], strlen(texts[i]), &body);
            buf_add(&plain, texts[i], strlen(texts[i]));
            if (i < 2) {
                codec_writer_segment(&w, &seg[i]);
                buf_add(&body, seg[i].data, seg[i].len);
                buf_add(&plain, i == 0 ? big : big + 1000, seg[i].plain_len);
            }
        }
        codec_writer_end(&w, &piece);
        if (piece.len) buf_add(&body, piece.data, piece.len); /* zstd has no end */
        buf other = {0};
        bool read = k == CODEC_GZIP ? zlib_gunzip(body.data, body.len, &other) : zstd_plain(body.data, body.len, plain.len, &other);
        CHECK(read && other.len == plain.len && memcmp(other.data, plain.data, plain.len) == 0);
        buf_free(&other);
        CHECK_INT(decode_whole(c, k, body.data, body.len, plain.len, &other), CODEC_DECODED);
        CHECK(other.len == plain.len && memcmp(other.data, plain.data, plain.len) == 0);
        buf_free(&other);
        codec_segment_drop(&seg[0]);
        codec_segment_drop(&seg[1]);
        CHECK(seg[0].data == NULL);
        buf_free(&body);
        buf_free(&piece);
        buf_free(&plain);
    }
    free(big);
}

/* The list in a coding is the list: parts from the cached segments, for either flag set, and
 * the segments follow the records (a change drops them). */
static void test_list_parts(codec *c) {
    membership *m = membership_new("http://self.test/", false, NOW, 300000);
    char url[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(url, sizeof url, "http://10.%d.%d.1:3000/", i / 250, i % 250);
        member_entry e = {.base_url = url, .url_len = strlen(url), .last_update = NOW - i, .last_update_ok = true};
        membership_merge(m, &e, i % 7 ? MEMBER_ONLINE : MEMBER_OFFLINE, NOW);
    }
    for (codec_kind k = CODEC_GZIP; k <= CODEC_ZSTD; k++) {
        unsigned flag_sets[] = {WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE, 0};
        for (int f = 0; f < 2; f++) {
            buf plain = {0}, coded = {0}, back = {0};
            wire_write_list(&plain, m, flag_sets[f]);
            wire_list_parts p;
            wire_list_parts_coded(&p, m, flag_sets[f], c, k);
            CHECK(!p.failed);
            CHECK(p.peers[0] == m->peers[MEMBER_ONLINE].coded[k].data); /* the cache's own bytes */
            wire_list_parts_join(&p, &coded);
            wire_list_parts_free(&p);
            CHECK(coded.len * 3 < plain.len);
            CHECK_INT(decode_whole(c, k, coded.data, coded.len, plain.len, &back), CODEC_DECODED);
            CHECK(back.len == plain.len && memcmp(back.data, plain.data, plain.len) == 0);
            buf_free(&plain);
            buf_free(&coded);
            buf_free(&back);
        }
    }
    CHECK(m->peers[MEMBER_ONLINE].coded[CODEC_GZIP].data != NULL);
    member_entry newer = {.base_url = "http://10.0.1.1:3000/", .url_len = 21, .last_update = NOW, .last_update_ok = true};
    membership_merge(m, &newer, MEMBER_ONLINE, NOW);
    CHECK(m->peers[MEMBER_ONLINE].coded[CODEC_GZIP].data == NULL);
    CHECK(m->peers[MEMBER_ONLINE].coded[CODEC_ZSTD].data == NULL);
    membership_free(m);
}

static void test_limits(codec *c) {
    const size_t limit = 1 << 20;
    char *plain = sample(limit + 1);
    buf gz = {0}, zs = {0}, back = {0};
    /* Exactly the limit: read; a byte more: refused. */
    codec_encode(c, CODEC_GZIP, plain, limit, &gz);
    codec_encode(c, CODEC_ZSTD, plain, limit, &zs);
    CHECK_INT(decode_whole(c, CODEC_GZIP, gz.data, gz.len, limit, &back), CODEC_DECODED);
    buf_free(&back);
    CHECK_INT(decode_whole(c, CODEC_ZSTD, zs.data, zs.len, limit, &back), CODEC_DECODED);
    buf_free(&back);
    CHECK_INT(decode_whole(c, CODEC_GZIP, gz.data, gz.len, limit - 1, &back), CODEC_OVER_LIMIT);
    CHECK(back.data == NULL && back.len == 0); /* nothing kept of a refusal */
    CHECK_INT(decode_whole(c, CODEC_ZSTD, zs.data, zs.len, limit - 1, &back), CODEC_OVER_LIMIT);
    buf_free(&gz);
    buf_free(&zs);

    /* Bombs: 256 MiB of zeros. gzip's trailer lies (it says 0 bytes); zstd once without a
     * declared size (streamed), once declaring it (refused unread). */
    size_t huge = (size_t)256 << 20;
    char *zeros = calloc(1, huge);
    codec_encode(c, CODEC_GZIP, zeros, huge, &gz);
    CHECK(gz.len < huge / 100);
    gz.data[gz.len - 4] = gz.data[gz.len - 3] = gz.data[gz.len - 2] = gz.data[gz.len - 1] = 0;
    CHECK_INT(decode_whole(c, CODEC_GZIP, gz.data, gz.len, limit, &back), CODEC_OVER_LIMIT);
    CHECK(back.data == NULL);
    codec_encode(c, CODEC_ZSTD, zeros, huge, &zs);
    CHECK_INT(decode_whole(c, CODEC_ZSTD, zs.data, zs.len, limit, &back), CODEC_OVER_LIMIT);
    buf streamed = {0};
    buf_reserve(&streamed, ZSTD_compressBound(huge));
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
    ZSTD_outBuffer o = {streamed.data, streamed.cap, 0};
    ZSTD_inBuffer in = {zeros, huge, 0};
    CHECK(ZSTD_compressStream2(cc, &o, &in, ZSTD_e_end) == 0); /* no size declared */
    ZSTD_freeCCtx(cc);
    CHECK(ZSTD_getFrameContentSize(streamed.data, o.pos) == ZSTD_CONTENTSIZE_UNKNOWN);
    CHECK_INT(decode_whole(c, CODEC_ZSTD, streamed.data, o.pos, limit, &back), CODEC_OVER_LIMIT);
    CHECK_INT(decode_whole(c, CODEC_ZSTD, streamed.data, o.pos, huge, &back), CODEC_DECODED);
    CHECK(back.len == huge);
    buf_free(&back);
    buf_free(&streamed);
    buf_free(&gz);
    buf_free(&zs);
    free(zeros);
    free(plain);
}

static void test_corrupt(codec *c) {
    char *plain = sample(50000);
    buf gz = {0}, zs = {0}, back = {0};
    codec_encode(c, CODEC_GZIP, plain, 50000, &gz);
    codec_encode(c, CODEC_ZSTD, plain, 50000, &zs);
    CHECK_INT(decode_whole(c, CODEC_GZIP, "{\"online\":[]}", 13, 1000, &back), CODEC_CORRUPT);
    CHECK_INT(decode_whole(c, CODEC_ZSTD, "{\"online\":[]}", 13, 1000, &back), CODEC_CORRUPT);
    CHECK_INT(decode_whole(c, CODEC_GZIP, "", 0, 1000, &back), CODEC_CORRUPT);
    CHECK_INT(decode_whole(c, CODEC_ZSTD, "", 0, 1000, &back), CODEC_CORRUPT);
    CHECK_INT(decode_whole(c, CODEC_GZIP, gz.data, gz.len - 9, 100000, &back), CODEC_CORRUPT); /* truncated */
    CHECK_INT(decode_whole(c, CODEC_ZSTD, zs.data, zs.len - 9, 100000, &back), CODEC_CORRUPT);
    gz.data[gz.len - 6] ^= 1; /* the CRC-32 */
    CHECK_INT(decode_whole(c, CODEC_GZIP, gz.data, gz.len, 100000, &back), CODEC_CORRUPT);
    gz.data[gz.len - 6] ^= 1;
    zs.data[zs.len / 2] ^= 0x55;
    CHECK_INT(decode_whole(c, CODEC_ZSTD, zs.data, zs.len, 100000, &back), CODEC_CORRUPT);
    CHECK(back.data == NULL);
    /* Two gzip members read as one body (RFC 1952); bytes after a zlib stream do not. */
    buf two = {0};
    buf_add(&two, gz.data, gz.len);
    buf_add(&two, gz.data, gz.len);
    CHECK_INT(decode_whole(c, CODEC_GZIP, two.data, two.len, 100000, &back), CODEC_DECODED);
    CHECK(back.len == 100000 && memcmp(back.data + 50000, plain, 50000) == 0);
    buf_free(&back);
    buf_add(&two, "x", 1);
    CHECK_INT(decode_whole(c, CODEC_GZIP, two.data, two.len, 100000, &back), CODEC_CORRUPT);
    /* deflate: the zlib format, and the raw deflate some clients send. */
    uLongf zlen = compressBound(50000);
    buf z = {0};
    buf_reserve(&z, zlen);
    CHECK(compress2((Bytef *)z.data, &zlen, (const Bytef *)plain, 50000, 1) == Z_OK);
    CHECK_INT(decode_whole(c, CODEC_DEFLATE, z.data, zlen, 50000, &back), CODEC_DECODED);
    CHECK(back.len == 50000 && memcmp(back.data, plain, 50000) == 0);
    buf_free(&back);
    CHECK_INT(decode_whole(c, CODEC_DEFLATE, gz.data + 10, gz.len - 18, 50000, &back), CODEC_DECODED);
    CHECK(back.len == 50000 && memcmp(back.data, plain, 50000) == 0);
    buf_free(&back);
    buf_free(&z);
    buf_free(&two);
    buf_free(&gz);
    buf_free(&zs);
    free(plain);
}

int main(void) {
    codec *c = codec_new();
    test_headers();
    test_round_trip(c);
    test_joined(c);
    test_list_parts(c);
    test_limits(c);
    test_corrupt(c);
    codec_free(c);
    return check_finish("test_codec");
}
