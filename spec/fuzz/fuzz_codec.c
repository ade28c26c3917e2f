/* The decoders of codec.h, on any body: what a client or a peer may send as gzip, deflate or
 * zstd.
 *
 * Input: one byte choosing the coding and the limit, one choosing how the body is cut into
 * pieces (fuzz.h), then the body. Properties:
 *   - decoded whole and in pieces: the same verdict and, when decoded, the same bytes;
 *   - a body decoded is within the limit, NUL-terminated; a refusal keeps nothing;
 *   - the input itself, encoded in each coding this node writes and decoded again, comes
 *     back the same, within the limit when it is within it and refused when it is over. */
#include "codec.h"
#include "fuzz.h"

static codec *shared_codec;

static void check_decode(codec_kind k, const char *data, size_t len, uint8_t split, size_t limit) {
    buf whole = {0}, pieces = {0};
    wire_chunk one = {data, len};
    codec_result r = codec_decode(shared_codec, k, &one, 1, limit, &whole);
    wire_chunk *chunks = malloc((2 * len + 1) * sizeof *chunks);
    if (!chunks) abort();
    size_t count = fuzz_split(data, len, split, chunks);
    codec_result r2 = codec_decode(shared_codec, k, chunks, count, limit, &pieces);
    free(chunks);
    FUZZ_ASSERT(r != CODEC_NO_MEMORY && r2 != CODEC_NO_MEMORY, "out of memory");
    FUZZ_ASSERT(r == r2, "%s: whole %d, in pieces %d", codec_name(k), r, r2);
    if (r == CODEC_DECODED) {
        FUZZ_ASSERT(whole.len <= limit && whole.data[whole.len] == '\0', "%zu bytes over a limit of %zu", whole.len, limit);
        FUZZ_ASSERT(whole.len == pieces.len && memcmp(whole.data, pieces.data, whole.len) == 0, "pieces decode otherwise");
    } else {
        FUZZ_ASSERT(whole.data == NULL && pieces.data == NULL, "a refusal kept its bytes");
    }
    buf_free(&whole);
    buf_free(&pieces);
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size) {
    if (size < 2) return 0;
    if (!shared_codec && !(shared_codec = codec_new())) abort();
    static const codec_kind kinds[] = {CODEC_GZIP, CODEC_DEFLATE, CODEC_ZSTD};
    codec_kind k = kinds[input[0] % 3];
    size_t limit = (size_t)1 << (8 + (input[0] >> 2) % 12); /* 256 B to 512 KiB */
    const char *data = (const char *)input + 2;
    size_t len = size - 2;
    check_decode(k, data, len, input[1], limit);

    for (codec_kind w = CODEC_GZIP; w <= CODEC_ZSTD; w++) {
        buf coded = {0}, back = {0};
        codec_encode(shared_codec, w, data, len, &coded);
        FUZZ_ASSERT(!coded.failed, "out of memory");
        check_decode(w, coded.data, coded.len, input[1], limit);
        wire_chunk one = {coded.data, coded.len};
        codec_result r = codec_decode(shared_codec, w, &one, 1, limit, &back);
        FUZZ_ASSERT(r == (len <= limit ? CODEC_DECODED : CODEC_OVER_LIMIT), "%s of %zu bytes, limit %zu: %d",
                    codec_name(w), len, limit, r);
        if (r == CODEC_DECODED) FUZZ_ASSERT(back.len == len && memcmp(back.data, data, len) == 0, "round trip differs");
        buf_free(&coded);
        buf_free(&back);
    }
    return 0;
}
