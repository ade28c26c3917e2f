/* http_framing: the bytes evhttp gets to read, for requests whole and in pieces. Each case is a
 * connection's input and what the tracker makes of it: the stream with its rewritten
 * chunk-size lines, cut where the framing was refused ("<refused>", then the reason), as
 * evhttp reads it after the server's changes (http_server.c). */
#include "check.h"
#include "http_framing.h"

#include <stdlib.h>

#define MAX_BODY 8388608
#define MAX_HEADERS 65536
#define CHUNKED_HEAD "POST /clustershazbot/gossip HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

typedef struct outcome {
    char *stream; /* malloc'd, NUL-terminated (the input may hold NULs: compared by length) */
    size_t len;
    const char *why; /* once evhttp has drained everything */
    int rewrites;
} outcome;

/* Feeds `in` in pieces of `piece` bytes (0: whole), applying the edits to a copy. */
static outcome run(const char *in, size_t len, size_t piece, uint64_t max_body, size_t max_headers) {
    http_framing f;
    http_framing_init(&f, max_body, max_headers);
    char *s = malloc(len + 16);
    memcpy(s, in, len);
    outcome o = {.stream = s, .len = len};
    for (size_t at = 0; at < len;) {
        size_t n = piece == 0 || piece > len - at ? len - at : piece;
        size_t done = 0;
        while (done < n) {
            http_framing_edit e;
            done += http_framing_read(&f, s + at + done, n - done, &e);
            if (e.action == HTTP_FRAMING_REWRITE) {
                CHECK(e.at + e.len <= at + done);
                memcpy(s + e.at, e.bytes, e.len);
                o.rewrites++;
            } else if (e.action == HTTP_FRAMING_REFUSE) {
                CHECK(e.at <= at + done);
                memcpy(s + e.at, "<refused>", 10);
                o.len = (size_t)e.at + 9;
                at = len;
                break;
            }
        }
        if (at < len) at += n;
    }
    http_framing_drained(&f, len);
    o.why = http_framing_refusal(&f);
    http_framing_free(&f);
    return o;
}

static void expect(const char *name, const char *in, size_t len, const char *want, size_t want_len,
                   const char *why, uint64_t max_body) {
    static const size_t pieces[] = {0, 1, 2, 3, 7, 64};
    for (size_t p = 0; p < sizeof pieces / sizeof *pieces; p++) {
        outcome o = run(in, len, pieces[p], max_body, MAX_HEADERS);
        bool same = o.len == want_len && memcmp(o.stream, want, want_len) == 0;
        if (!check_that(same, __FILE__, __LINE__, name))
            fprintf(stderr, "    in pieces of %zu:\n    got  \"%.*s\"\n    want \"%.*s\"\n", pieces[p], (int)o.len,
                    o.stream, (int)want_len, want);
        if (why) CHECK_CONTAINS(o.why, why);
        else CHECK_STR(o.why, NULL);
        free(o.stream);
    }
}

#define EXPECT(name, in, want, why) expect(name, in, sizeof in - 1, want, sizeof want - 1, why, MAX_BODY)
#define SAME(name, in) EXPECT(name, in, in, NULL)

static void test_good_framing(void) {
    SAME("plain chunks", CHUNKED_HEAD "5\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n");
    EXPECT("extensions, a quoted string, whitespace before ';'",
           CHUNKED_HEAD "5;name=value\r\nhello\r\n3 ; a=\"q;\\\"x\" ;b\r\nabc\r\n0;last=1\r\n\r\n",
           CHUNKED_HEAD "000000000005\r\nhello\r\n0000000000000003\r\nabc\r\n00000000\r\n\r\n", NULL);
    EXPECT("whitespace after the size", CHUNKED_HEAD "5 \t\r\nhello\r\n0\r\n\r\n",
           CHUNKED_HEAD "005\r\nhello\r\n0\r\n\r\n", NULL);
    EXPECT("trailer fields, then the next request", CHUNKED_HEAD "0\r\nExpires: x\r\nX-A:b\r\n\r\n" CHUNKED_HEAD "1;e\r\na\r\n0\r\n\r\n",
           CHUNKED_HEAD "0\r\nExpires: x\r\nX-A:b\r\n\r\n" CHUNKED_HEAD "001\r\na\r\n0\r\n\r\n", NULL);
    /* A Content-Length body is skipped by its count: what looks like framing in it is data. */
    EXPECT("a Content-Length body, then a chunked request",
           "POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n5;x\r\nhello\r\n" CHUNKED_HEAD "5;x\r\nhello\r\n0\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n5;x\r\nhello\r\n" CHUNKED_HEAD "005\r\nhello\r\n0\r\n\r\n", NULL);
    EXPECT("a GET without a body, then a chunked request", "GET /x HTTP/1.1\r\n\r\n" CHUNKED_HEAD "5;x\r\nhello\r\n0\r\n\r\n",
           "GET /x HTTP/1.1\r\n\r\n" CHUNKED_HEAD "005\r\nhello\r\n0\r\n\r\n", NULL);
    EXPECT("a chunk that ends where the data's CRLF is cut", CHUNKED_HEAD "3;x\r\n\r\n\r\r\n0\r\n\r\n",
           CHUNKED_HEAD "003\r\n\r\n\r\r\n0\r\n\r\n", NULL);
}

/* The head as evhttp reads it: which requests have a chunked body. */
static void test_heads(void) {
    EXPECT("lines ending in a bare LF", "POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n5;a\r\nhello\r\n0\r\n\r\n",
           "POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n005\r\nhello\r\n0\r\n\r\n", NULL);
    EXPECT("the name in any case, the value trimmed",
           "PUT / HTTP/1.1\r\ntransfer-encoding:   CHUNKED \t\r\n\r\n5;a\r\nhello\r\n0\r\n\r\n",
           "PUT / HTTP/1.1\r\ntransfer-encoding:   CHUNKED \t\r\n\r\n005\r\nhello\r\n0\r\n\r\n", NULL);
    /* evhttp would cut the value at the NUL: the head is refused instead (issue 11). */
    EXPECT("a NUL in a framing field", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\0junk\r\n\r\n5;a\r\nhello\r\n0\r\n\r\n",
           "POST / HTTP/1.1\r\n<refused>", "NUL byte");
    EXPECT("a NUL in a secret", "GET /clustershazbot/members HTTP/1.1\r\nHost: x\r\nAuthorization: s3cret\0junk\r\n\r\n",
           "GET /clustershazbot/members HTTP/1.1\r\nHost: x\r\n<refused>", "NUL byte");
    EXPECT("a NUL in the request line", "GET /\0x HTTP/1.1\r\n\r\n", "<refused>", "NUL byte");
    EXPECT("a NUL in a later request", "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nX: \0\r\n\r\n",
           "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n<refused>", "NUL byte");
    /* Not chunked for evhttp: what follows the head is the next request, and stays as it is. */
    SAME("HEAD has no body", "HEAD / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n");
    SAME("TRACE has no body", "TRACE / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n");
    SAME("a method evhttp does not know", "BREW / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n");
    SAME("another coding", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;x\r\nhello\r\n");
    SAME("a space before the colon", "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n5;x\r\nhello\r\n");
    SAME("only the first Transfer-Encoding counts",
         "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n");
    /* evhttp joins a folded line to the value with a space: " chunked", "chunked x". */
    SAME("a value folded onto the next line", "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n5;x\r\nhello\r\n");
    SAME("a value folded after chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\tx\r\n\r\n5;x\r\nhello\r\n");
    EXPECT("a Content-Length folded and tab-led",
           "POST / HTTP/1.1\r\nContent-Length:\r\n\t 4\r\n\r\n5;x\r" CHUNKED_HEAD "5;x\r\nhello\r\n0\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length:\r\n\t 4\r\n\r\n5;x\r" CHUNKED_HEAD "005\r\nhello\r\n0\r\n\r\n", NULL);
    /* evhttp refuses these requests and closes the connection: nothing after them is touched. */
    SAME("a bad Content-Length", "POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n" CHUNKED_HEAD "5;x\r\nhello\r\n0\r\n\r\n");
    SAME("a Content-Length over the limit",
         "POST / HTTP/1.1\r\nContent-Length: 8388609\r\n\r\n" CHUNKED_HEAD "5;x\r\nhello\r\n0\r\n\r\n");
    static const char long_head[] = CHUNKED_HEAD "5;x\r\nhello\r\n0\r\n\r\n";
    outcome o = run(long_head, sizeof long_head - 1, 0, MAX_BODY, 40);
    CHECK_INT(o.rewrites, 0); /* a head over the header limit */
    free(o.stream);
}

static void test_broken_framing(void) {
    EXPECT("a size that is not hex", CHUNKED_HEAD "zz\r\nhello\r\n0\r\n\r\n", CHUNKED_HEAD "<refused>", "not hexadecimal");
    EXPECT("a negative size", CHUNKED_HEAD "-5\r\nhello\r\n0\r\n\r\n", CHUNKED_HEAD "<refused>", "not hexadecimal");
    EXPECT("a size after a space", CHUNKED_HEAD " 5\r\nhello\r\n0\r\n\r\n", CHUNKED_HEAD "<refused>", "not hexadecimal");
    EXPECT("a size with a sign", CHUNKED_HEAD "+5\r\nhello\r\n0\r\n\r\n", CHUNKED_HEAD "<refused>", "not hexadecimal");
    EXPECT("no size at all", CHUNKED_HEAD "\r\nhello\r\n0\r\n\r\n", CHUNKED_HEAD "<refused>", "not hexadecimal");
    EXPECT("a size in C's hex", CHUNKED_HEAD "0x5\r\nhello\r\n0\r\n\r\n", CHUNKED_HEAD "<refused>", "other than an extension");
    EXPECT("a chunk longer than its size", CHUNKED_HEAD "3\r\nhello\r\n0\r\n\r\n", CHUNKED_HEAD "3\r\nhel<refused>",
           "not followed by CRLF");
    EXPECT("no CRLF after the data", CHUNKED_HEAD "5\r\nhelloXX0\r\n\r\n", CHUNKED_HEAD "5\r\nhello<refused>",
           "not followed by CRLF");
    EXPECT("a bare LF after the data", CHUNKED_HEAD "5\r\nhello\n0\r\n\r\n", CHUNKED_HEAD "5\r\nhello<refused>",
           "not followed by CRLF");
    EXPECT("a bare LF after the size", CHUNKED_HEAD "5\nhello\r\n0\r\n\r\n", CHUNKED_HEAD "<refused>", "LF without CR");
    EXPECT("an empty extension", CHUNKED_HEAD "5;\r\nhello\r\n0\r\n\r\n", CHUNKED_HEAD "<refused>", "chunk extension");
    EXPECT("an extension without its value", CHUNKED_HEAD "5;a=\r\nhello\r\n", CHUNKED_HEAD "<refused>", "chunk extension");
    EXPECT("an unclosed quoted string", CHUNKED_HEAD "5;a=\"x\r\nhello\r\n", CHUNKED_HEAD "<refused>", "chunk extension");
    EXPECT("a space inside an extension", CHUNKED_HEAD "5;a b\r\nhello\r\n", CHUNKED_HEAD "<refused>", "chunk extension");
    EXPECT("a value without a name", CHUNKED_HEAD "5;=x\r\nhello\r\n", CHUNKED_HEAD "<refused>", "chunk extension");
    EXPECT("a control byte in a quoted string", CHUNKED_HEAD "5;a=\"\x01\"\r\nhello\r\n", CHUNKED_HEAD "<refused>",
           "chunk extension");
    EXPECT("a trailer field without a colon", CHUNKED_HEAD "0\r\nno colon\r\n\r\n", CHUNKED_HEAD "0\r\n<refused>",
           "trailer field");
    EXPECT("a folded trailer field", CHUNKED_HEAD "0\r\nA: b\r\n c\r\n\r\n", CHUNKED_HEAD "0\r\nA: b\r\n<refused>",
           "trailer field");
    EXPECT("a trailer line ending in a bare LF", CHUNKED_HEAD "0\r\nA: b\n\r\n", CHUNKED_HEAD "0\r\n<refused>",
           "LF without CR");
    /* The second request of a connection, after a good one. */
    EXPECT("broken framing after a good request", CHUNKED_HEAD "5;a\r\nhello\r\n0\r\n\r\n" CHUNKED_HEAD "5\r\nhello!",
           CHUNKED_HEAD "005\r\nhello\r\n0\r\n\r\n" CHUNKED_HEAD "5\r\nhello<refused>", "not followed by CRLF");

    /* evhttp counts trailer fields against the header limit, with the head: lines without
     * their ends. Here both fields (13 bytes each) fit exactly; a byte less and B is refused. */
    static const char trailers[] = CHUNKED_HEAD "0\r\nA: 0123456789\r\nB: 0123456789\r\n\r\n";
    size_t head_size = sizeof CHUNKED_HEAD - 1 - 4 * 2;
    outcome big = run(trailers, sizeof trailers - 1, 0, MAX_BODY, head_size + 26);
    CHECK_STR(big.why, NULL);
    free(big.stream);
    big = run(trailers, sizeof trailers - 1, 0, MAX_BODY, head_size + 25);
    CHECK_CONTAINS(big.why, "over the header limit");
    CHECK_INT(big.len, sizeof CHUNKED_HEAD - 1 + 3 + 15 + 9); /* refused at B */
    free(big.stream);

    char line[sizeof CHUNKED_HEAD + 5000];
    size_t n = (size_t)snprintf(line, sizeof line, "%s5;", CHUNKED_HEAD);
    memset(line + n, 'a', HTTP_FRAMING_LINE_MAX);
    memcpy(line + n + HTTP_FRAMING_LINE_MAX, "\r\nhello", 7);
    outcome o = run(line, n + HTTP_FRAMING_LINE_MAX + 7, 1000, MAX_BODY, MAX_HEADERS);
    CHECK_CONTAINS(o.why, "over 4096 bytes");
    CHECK_INT(o.len, sizeof CHUNKED_HEAD - 1 + 9);
    free(o.stream);
}

/* Over the limit, evhttp answers 413 itself: the tracker steps aside, without a reason. */
#define EXPECT_WITHIN(max_body, name, in, want) expect(name, in, sizeof in - 1, want, sizeof want - 1, NULL, max_body)

static void test_limit(void) {
    EXPECT_WITHIN(10, "a chunk over the limit", CHUNKED_HEAD "b;x\r\nhello world\r\n",
                  CHUNKED_HEAD "b;x\r\nhello world\r\n");
    EXPECT_WITHIN(10, "chunks over the limit together", CHUNKED_HEAD "5\r\nhello\r\n6;x\r\nworld!\r\n",
                  CHUNKED_HEAD "5\r\nhello\r\n6;x\r\nworld!\r\n");
    EXPECT_WITHIN(UINT64_MAX, "a size of 17 hex digits", CHUNKED_HEAD "10000000000000000;x\r\n",
                  CHUNKED_HEAD "10000000000000000;x\r\n");
    EXPECT_WITHIN(10, "chunks at the limit", CHUNKED_HEAD "5\r\nhello\r\n5;x\r\nworld\r\n0\r\n\r\n",
                  CHUNKED_HEAD "5\r\nhello\r\n005\r\nworld\r\n0\r\n\r\n");
}

/* The reason is for the answer to the refused request only: while evhttp has not read that
 * request's head, a failure (an earlier request's 413) is evhttp's own. */
static void test_refusal_reaches_its_request(void) {
    static const char in[] = CHUNKED_HEAD "0\r\n\r\n" CHUNKED_HEAD "zz\r\n";
    size_t body_start = 2 * (sizeof CHUNKED_HEAD - 1) + 5;
    http_framing f;
    http_framing_init(&f, MAX_BODY, MAX_HEADERS);
    http_framing_edit e;
    CHECK_INT(http_framing_read(&f, in, sizeof in - 1, &e), sizeof in - 1);
    CHECK_INT(e.action, HTTP_FRAMING_REFUSE);
    CHECK_INT(e.at, body_start);
    http_framing_drained(&f, body_start - 1);
    CHECK_STR(http_framing_refusal(&f), NULL);
    http_framing_drained(&f, 1);
    CHECK_CONTAINS(http_framing_refusal(&f), "chunked");
    /* After a refusal the rest goes by unread. */
    CHECK_INT(http_framing_read(&f, "5;x\r\n", 5, &e), 5);
    CHECK_INT(e.action, HTTP_FRAMING_NONE);
    CHECK_INT(f.read, sizeof in - 1 + 5);
    http_framing_free(&f);
}

static void test_chunk_line_grammar(void) {
    static const struct {
        const char *line;
        uint64_t size;
        size_t digits;
        bool good;
    } cases[] = {
        {"0", 0, 1, true},
        {"00000", 0, 5, true},
        {"fF", 255, 2, true},
        {"ffffffffffffffff", UINT64_MAX, 16, true},
        {"1ffffffffffffffff", UINT64_MAX, 17, true}, /* saturates: over any limit */
        {"5;a", 5, 1, true},
        {"5 ; a = b ; c=\"\" ;d=\"\\\\\\\"\"", 5, 1, true},
        {"5;a=\"tab\tand\x80\"", 5, 1, true},
        {"5\t;a", 5, 1, true},
        {"5;a;b;c", 5, 1, true},
        {"", 0, 0, false},
        {"g", 0, 0, false},
        {"5;", 5, 1, false},
        {"5;a=\"\\\"", 5, 1, false},
        {"5;a=b c", 5, 1, false},
        {"5;a=b;", 5, 1, false},
        {"5;a@=b", 5, 1, false},
        {"5\r", 5, 1, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint64_t size = 1234;
        size_t digits = 99;
        const char *why = http_framing_chunk_line(cases[i].line, strlen(cases[i].line), &size, &digits);
        if (!check_that((why == NULL) == cases[i].good, __FILE__, __LINE__, cases[i].line))
            fprintf(stderr, "    \"%s\": %s\n", cases[i].line, why ? why : "accepted");
        CHECK(size == cases[i].size);
        CHECK_INT(digits, cases[i].digits);
    }
}

int main(void) {
    test_good_framing();
    test_heads();
    test_broken_framing();
    test_limit();
    test_refusal_reaches_its_request();
    test_chunk_line_grammar();
    return check_finish("test_http_framing");
}
