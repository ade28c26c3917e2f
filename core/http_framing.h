/* http_framing: follows the requests of one connection through its input bytes, ahead of
 * evhttp, so that evhttp (libevent 2.1) only ever reads chunked bodies that it reads right.
 *
 * libevent 2.1.12 reads a chunk-size line with strtoll and refuses whatever follows the digits
 * but a space, so a chunk extension (RFC 9112 section 7.1.1: "5;name=value") was refused; and
 * it calls every broken frame a body too long, so a size that is not hex or data longer than
 * its size were answered 413. It also takes what RFC 9112 refuses (" 5", "+5", "0x5", a bare
 * LF, chunk data without its CRLF when the next line happens to parse), which is how one
 * request hides another from a proxy that reads the framing right.
 *
 * The tracker reads every request of the connection as evhttp will: the head (request line and
 * header fields, lines ending in LF or CRLF, the first Transfer-Encoding and Content-Length as
 * evhttp finds and trims them), then the body: Content-Length bytes skipped by their count,
 * unread, or a chunked body frame by frame under RFC 9112's grammar. It tells its caller what
 * to change before evhttp reads the bytes:
 *
 * - HTTP_FRAMING_REWRITE: a chunk-size line with extensions (or whitespace) becomes its bare
 *   size, padded with leading zeros to the line's own length; the buffer keeps its length and
 *   its chains, and evhttp's strtoll reads the same number;
 * - HTTP_FRAMING_REFUSE: the framing is broken. The line where evhttp reads next becomes one
 *   it refuses (HTTP_FRAMING_FILLER up to the end of what the caller holds, then CRLF): evhttp
 *   fails the request, in its words with 413, and http_framing_refusal() gives the reason for
 *   the 400 the server answers instead.
 *
 * A head line with a NUL byte is refused the same way (evhttp would cut the value there and
 * read "s3cret\0junk" as "s3cret"); evhttp fails the filler line with 400, answered with the
 * reason too.
 *
 * Where evhttp refuses a request itself (a head it cannot parse, a body over the limit) it
 * closes the connection after its answer, and the tracker reads no further. Offsets count the
 * connection's bytes from its first; the caller maps them to its buffer by what evhttp has
 * drained. Pure: no I/O, no libevent. */
#ifndef SHAZBOT_HTTP_FRAMING_H
#define SHAZBOT_HTTP_FRAMING_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest chunk-size or trailer line read, CRLF excluded: extensions are for small
 * parameters, and a longer line is refused rather than held. */
#define HTTP_FRAMING_LINE_MAX 4096
/* What a refused line is made of: not a hex digit (a chunk size), not a space or a tab (a
 * folded line), not a colon (a trailer field). */
#define HTTP_FRAMING_FILLER 'x'

typedef enum http_framing_action {
    HTTP_FRAMING_NONE,
    HTTP_FRAMING_REWRITE, /* write `bytes` (`len` of them) at `at` */
    HTTP_FRAMING_REFUSE,  /* fill from `at` to the end with HTTP_FRAMING_FILLER, add CRLF */
} http_framing_action;

typedef struct http_framing_edit {
    http_framing_action action;
    uint64_t at;
    const char *bytes; /* the tracker's own, valid until its next call */
    size_t len;
} http_framing_edit;

typedef struct http_framing {
    uint64_t read;    /* bytes of the stream read so far: the offset of the next one */
    uint64_t drained; /* bytes evhttp has taken from the front of the buffer */
    /* Only the tracker writes what follows. */
    int state;
    uint64_t max_body;
    size_t max_headers;
    uint64_t line_start; /* offset of the line being read */
    size_t line_len;     /* its bytes so far, LF excluded */
    bool line_cr;        /* its last byte so far is a CR */
    buf line;            /* a chunk-size or trailer line, as far as it is read */
    /* The head. */
    size_t head_size;    /* line lengths without their ends, as evhttp counts them */
    size_t head_lines;
    bool body_method;    /* the method is one evhttp reads a body for */
    char prefix[24];     /* the start of the line, enough to know which field it is */
    size_t prefix_len;
    int field;           /* which field the line is, once known */
    int last_field;      /* which field a folded line continues */
    bool seen_encoding, seen_length;
    buf encoding, length, value; /* the first of each, trimmed; the line's value so far */
    /* The body. */
    uint64_t left;       /* bytes of body or chunk data still to skip */
    uint64_t body_start; /* offset of this request's body */
    uint64_t body_size;  /* chunk sizes so far */
    /* A refusal. */
    const char *why;
    /* evhttp failed on the refused line once it drained this far (a head line: past its first
     * byte; a body: into it). */
    uint64_t refused_body_start;
} http_framing;

void http_framing_init(http_framing *f, uint64_t max_body, size_t max_headers);
void http_framing_free(http_framing *f);

/* Reads the next `len` bytes of the stream. Returns how many it read: all of them, or fewer when
 * it stopped after a line to be changed (edit->action other than NONE); the caller changes it
 * and hands over the rest. After a refusal it reads on without looking. */
size_t http_framing_read(http_framing *f, const char *data, size_t len, http_framing_edit *edit);

/* How many of the next bytes the tracker reads without looking at them: the rest of a body
 * or of chunk data (all of them once it stepped aside). Skipping them costs nothing. */
uint64_t http_framing_unseen(const http_framing *f);
/* Reads `n` of those unseen bytes. */
void http_framing_skip(http_framing *f, uint64_t n);

/* evhttp took `n` bytes from the front of the buffer. */
void http_framing_drained(http_framing *f, size_t n);

/* Why the request that evhttp is failing had its framing refused: NULL when evhttp has not
 * reached the refused body yet (or there is none), and the failure is its own. */
const char *http_framing_refusal(const http_framing *f);

/* The grammar of one chunk-size line (CRLF excluded): 1*HEXDIG, then chunk extensions
 * (*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )) and optional whitespace.
 * Sets *size (UINT64_MAX when it overflows) and *digits; NULL when the line is good, else
 * what is wrong with it. */
const char *http_framing_chunk_line(const char *line, size_t len, uint64_t *size, size_t *digits);

#endif
