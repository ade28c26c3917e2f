/* The framing tracker of every connection (http_framing.h) on any input: a connection's bytes,
 * after two bytes choosing how they are cut into pieces (fuzz.h) and the body limit.
 * Properties:
 *   - the pieces change nothing: the same lines rewritten, the same refusal at the same place,
 *     for the same reason;
 *   - a rewritten chunk-size line keeps its length, is hex digits only, and evhttp's strtoll
 *     reads from it the size that the original line gave;
 *   - the tracker's output is its own fixed point: read again, the changed stream needs no
 *     rewrite, and a refused one is refused at the same place (where the filler begins);
 *   - an edit only touches bytes already read. */
#include "fuzz.h"
#include "http_framing.h"

#include <stdlib.h>
#include <string.h>

typedef struct result {
    char *stream; /* the input with the tracker's changes, filler and CRLF after a refusal */
    size_t len;
    uint64_t refused_at; /* UINT64_MAX: not refused */
    const char *why;
    size_t rewrites;
} result;

/* Reads `in` whole (seed < 0) or in the pieces of fuzz_split(seed). `original` holds the lines
 * before their rewrites. */
static result track(const char *in, size_t len, int seed, uint64_t max_body, const char *original) {
    http_framing f;
    http_framing_init(&f, max_body, 65536);
    result r = {.stream = malloc(len + 3), .len = len, .refused_at = UINT64_MAX};
    FUZZ_ASSERT(r.stream, "out of memory");
    memcpy(r.stream, in, len);
    size_t count = 1;
    wire_chunk whole = {r.stream, len}, *pieces = seed < 0 ? &whole : fuzz_split_alloc(r.stream, len, (uint8_t)seed, &count);
    size_t at = 0;
    for (size_t p = 0; p < count && r.refused_at == UINT64_MAX; p++) {
        for (size_t done = 0; done < pieces[p].len;) {
            http_framing_edit e;
            done += http_framing_read(&f, r.stream + at + done, pieces[p].len - done, &e);
            if (e.action == HTTP_FRAMING_REWRITE) {
                FUZZ_ASSERT(e.at + e.len <= at + done, "a rewrite of bytes not read yet");
                uint64_t was, now;
                size_t digits;
                FUZZ_ASSERT(!http_framing_chunk_line(original + e.at, e.len, &was, &digits), "a bad line rewritten");
                memcpy(r.stream + e.at, e.bytes, e.len);
                char line[HTTP_FRAMING_LINE_MAX + 1], *end;
                memcpy(line, e.bytes, e.len);
                line[e.len] = '\0';
                FUZZ_ASSERT(strspn(line, "0123456789abcdefABCDEF") == e.len, "not hex digits: %s", line);
                now = (uint64_t)strtoll(line, &end, 16);
                FUZZ_ASSERT(*end == '\0' && now == was, "strtoll reads %llu, the line said %llu",
                            (unsigned long long)now, (unsigned long long)was);
                r.rewrites++;
            } else if (e.action == HTTP_FRAMING_REFUSE) {
                FUZZ_ASSERT(e.at <= at + done, "a refusal of bytes not read yet");
                r.refused_at = e.at;
                /* What the server does: filler to the end of what it holds, then CRLF. */
                size_t held = at + pieces[p].len;
                memset(r.stream + e.at, HTTP_FRAMING_FILLER, held - e.at);
                memcpy(r.stream + held, "\r\n", 2);
                r.len = held + 2;
                break;
            }
        }
        at += pieces[p].len;
    }
    http_framing_drained(&f, r.len);
    r.why = http_framing_refusal(&f);
    FUZZ_ASSERT((r.why != NULL) == (r.refused_at != UINT64_MAX), "a refusal without its reason, or the reverse");
    http_framing_free(&f);
    if (pieces != &whole) free(pieces);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || size > 65536) return 0;
    uint8_t seed = data[0];
    uint64_t max_body = data[1] & 1 ? 64 : 8388608;
    const char *in = (const char *)data + 2;
    size_t len = size - 2;

    result whole = track(in, len, -1, max_body, in), cut = track(in, len, seed, max_body, in);
    /* A refusal in pieces may come with fewer bytes held: compared up to where it begins. */
    FUZZ_ASSERT(whole.refused_at == cut.refused_at, "refused at %llu whole, %llu in pieces",
                (unsigned long long)whole.refused_at, (unsigned long long)cut.refused_at);
    FUZZ_ASSERT(whole.why == cut.why, "refused for \"%s\" whole, \"%s\" in pieces", whole.why ? whole.why : "-",
                cut.why ? cut.why : "-");
    size_t common = whole.refused_at == UINT64_MAX ? len : (size_t)whole.refused_at;
    FUZZ_ASSERT(memcmp(whole.stream, cut.stream, common) == 0, "the streams differ");

    result again = track(whole.stream, whole.len, -1, max_body, whole.stream);
    FUZZ_ASSERT(again.rewrites == 0, "%zu rewrites of the tracker's own output", again.rewrites);
    /* A head refused for a NUL becomes a filler line that evhttp refuses (no colon), not the
     * tracker: its output is refused there by evhttp alone. */
    bool head_refusal = whole.why && strstr(whole.why, "NUL byte");
    FUZZ_ASSERT(head_refusal ? again.refused_at == UINT64_MAX : again.refused_at == whole.refused_at,
                "the output refused at %llu, the input at %llu",
                (unsigned long long)again.refused_at, (unsigned long long)whole.refused_at);
    free(whole.stream);
    free(cut.stream);
    free(again.stream);
    return 0;
}
