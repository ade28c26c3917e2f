/* http_framing: see http_framing.h. What evhttp does is read from libevent 2.1.12's http.c:
 * evhttp_parse_firstline_, evhttp_parse_headers_, evhttp_get_body, evhttp_get_body_length and
 * evhttp_handle_chunked_read. */
#include "http_framing.h"

#include <stdlib.h>
#include <string.h>

enum state {
    HEAD,       /* a line of the request's head */
    BODY,       /* Content-Length bytes */
    CHUNK_LINE, /* a chunk-size line */
    CHUNK_DATA,
    CHUNK_CR, /* the CRLF after chunk data */
    CHUNK_LF,
    TRAILER, /* a line of the trailer section */
    ASIDE,   /* evhttp refuses this request and closes the connection, or the tracker did */
};

/* Which header field a line of the head is. Only the first Transfer-Encoding and the first
 * Content-Length count: evhttp_find_header returns the first. */
enum field { FIELD_UNKNOWN, FIELD_OTHER, FIELD_ENCODING, FIELD_LENGTH, FIELD_FOLD };

static const char BARE_LF[] = "malformed chunked body: a line that ends in LF without CR";
#define DECIMAL(n) #n
#define IN_DECIMAL(n) DECIMAL(n)
static const char LONG_LINE[] =
    "malformed chunked body: a chunk-size or trailer line over " IN_DECIMAL(HTTP_FRAMING_LINE_MAX) " bytes";
static const char NOT_HEX[] = "malformed chunked body: a chunk size that is not hexadecimal";
static const char AFTER_SIZE[] = "malformed chunked body: a chunk size followed by something other than an extension";
static const char BAD_EXTENSION[] = "malformed chunked body: a malformed chunk extension";
static const char NO_CRLF[] = "malformed chunked body: chunk data longer than its size, or not followed by CRLF";
static const char BAD_TRAILER[] = "malformed chunked body: a malformed trailer field";
static const char BIG_TRAILER[] = "malformed chunked body: the head and the trailer fields over the header limit";
static const char NUL_IN_HEAD[] = "malformed request head: a NUL byte in the request line or a header field";

void http_framing_init(http_framing *f, uint64_t max_body, size_t max_headers) {
    memset(f, 0, sizeof *f);
    f->max_body = max_body;
    f->max_headers = max_headers;
    f->state = HEAD;
    f->last_field = FIELD_OTHER;
}

void http_framing_free(http_framing *f) {
    buf_free(&f->line);
    buf_free(&f->encoding);
    buf_free(&f->length);
    buf_free(&f->value);
}

void http_framing_drained(http_framing *f, size_t n) { f->drained += n; }

const char *http_framing_refusal(const http_framing *f) {
    /* evhttp drains a head as it parses it: past the refused body's start, it read that head
     * and is in that body, the only place where it can fail before the refused line. */
    return f->why && f->drained >= f->refused_body_start ? f->why : NULL;
}

/* ---- grammar (RFC 9110 section 5.6, RFC 9112 section 7.1.1) ------------------------------- */

static bool is_tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t skip_whitespace(const char *s, size_t len, size_t i) {
    while (i < len && (s[i] == ' ' || s[i] == '\t')) i++;
    return i;
}

static size_t skip_token(const char *s, size_t len, size_t i) {
    while (i < len && is_tchar((unsigned char)s[i])) i++;
    return i;
}

/* Past the quoted-string that starts at s[i] ('"'), 0 if it is not one. */
static size_t skip_quoted(const char *s, size_t len, size_t i) {
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') return i + 1;
        if (c == '\\') {
            if (++i == len) return 0;
            c = (unsigned char)s[i];
            if (c != '\t' && (c < 0x20 || c == 0x7f)) return 0; /* HTAB / SP / VCHAR / obs-text */
        } else if (c != '\t' && (c < 0x20 || c == 0x7f)) {
            return 0; /* qdtext: HTAB / SP / %x21-7E but '"' and '\' / obs-text */
        }
    }
    return 0;
}

const char *http_framing_chunk_line(const char *line, size_t len, uint64_t *size, size_t *digits) {
    uint64_t value = 0;
    size_t i = 0;
    for (int h; i < len && (h = hex_value((unsigned char)line[i])) >= 0; i++)
        value = value > (UINT64_MAX >> 4) ? UINT64_MAX : value << 4 | (uint64_t)h;
    *size = value;
    *digits = i;
    if (i == 0) return NOT_HEX;
    for (bool extended = false;; extended = true) {
        i = skip_whitespace(line, len, i);
        if (i == len) return NULL;
        if (line[i] != ';') return extended ? BAD_EXTENSION : AFTER_SIZE;
        i = skip_whitespace(line, len, i + 1);
        size_t name = i;
        i = skip_token(line, len, i);
        if (i == name) return BAD_EXTENSION;
        i = skip_whitespace(line, len, i);
        if (i == len || line[i] != '=') continue;
        i = skip_whitespace(line, len, i + 1);
        if (i < len && line[i] == '"') {
            i = skip_quoted(line, len, i);
            if (i == 0) return BAD_EXTENSION;
        } else {
            size_t token = i;
            i = skip_token(line, len, i);
            if (i == token) return BAD_EXTENSION;
        }
    }
}

/* field-line = field-name ":" OWS field-value OWS, with no obsolete folding. */
static bool trailer_field_good(const char *s, size_t len) {
    size_t i = skip_token(s, len, 0);
    if (i == 0 || i == len || s[i] != ':') return false;
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c != '\t' && (c < 0x20 || c == 0x7f)) return false;
    }
    return true;
}

/* ---- moving on ------------------------------------------------------------------------------ */

static void new_line(http_framing *f) {
    f->line_start = f->read;
    f->line_len = 0;
    f->line_cr = false;
    f->field = FIELD_UNKNOWN;
    f->line.len = 0;
    f->value.len = 0;
}

static void next_request(http_framing *f) {
    f->state = HEAD;
    f->head_size = 0;
    f->head_lines = 0;
    f->body_method = false;
    f->last_field = FIELD_OTHER;
    f->seen_encoding = f->seen_length = false;
    f->encoding.len = f->length.len = 0;
    new_line(f);
}

static void refuse(http_framing *f, uint64_t at, const char *why, http_framing_edit *edit) {
    bool in_head = f->state == HEAD;
    f->state = ASIDE;
    f->why = why;
    /* In a head, evhttp has drained past the refused line's first byte only once it read that
     * line, where it fails on the filler; an earlier line's failure leaves it at or before. */
    f->refused_body_start = in_head ? at + 1 : f->body_start;
    *edit = (http_framing_edit){.action = HTTP_FRAMING_REFUSE, .at = at};
}

/* ---- the head --------------------------------------------------------------------------------
 * Each line is kept only as long as it may matter: the first line up to its method, a field
 * line up to its name, and only the first Transfer-Encoding and Content-Length (and what folds
 * into them) to their end. */

static bool ascii_case_equal(const char *a, size_t len, const char *b) {
    if (strlen(b) != len) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x += 'a' - 'A';
        if (y >= 'A' && y <= 'Z') y += 'a' - 'A';
        if (x != y) return false;
    }
    return true;
}

/* The methods evhttp_method_may_have_body names, spelt as evhttp_parse_request_line knows them. */
static bool method_has_body(const char *m, size_t len) {
    static const char *const methods[] = {"POST", "PUT", "PATCH", "GET", "DELETE", "OPTIONS", "CONNECT"};
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (strlen(methods[i]) == len && memcmp(m, methods[i], len) == 0) return true;
    return false;
}

#define LONGEST_METHOD 7 /* OPTIONS, CONNECT */
#define LONGEST_NAME 17  /* Transfer-Encoding */

/* Decides what the line is from its start (f->value), once it can. */
static void classify(http_framing *f, bool whole) {
    const char *v = f->value.data;
    size_t len = f->value.len;
    if (f->head_lines == 0) {
        const char *space = memchr(v, ' ', len);
        if (!space && !whole && len <= LONGEST_METHOD) return;
        f->body_method = space && method_has_body(v, (size_t)(space - v));
        f->field = FIELD_OTHER;
    } else if (v[0] == ' ' || v[0] == '\t') {
        f->field = f->last_field == FIELD_ENCODING || f->last_field == FIELD_LENGTH ? FIELD_FOLD : FIELD_OTHER;
    } else {
        /* No NUL here: a line with one is refused as its bytes come (head_bytes). */
        const char *colon = memchr(v, ':', len);
        if (!colon && !whole && len <= LONGEST_NAME) return;
        size_t n = colon ? (size_t)(colon - v) : 0;
        if (colon && !f->seen_encoding && ascii_case_equal(v, n, "Transfer-Encoding")) f->field = FIELD_ENCODING;
        else if (colon && !f->seen_length && ascii_case_equal(v, n, "Content-Length")) f->field = FIELD_LENGTH;
        else f->field = FIELD_OTHER;
    }
    if (f->field == FIELD_OTHER) f->value.len = 0;
}

/* A value as evhttp keeps it: leading spaces (and tabs, in a folded line) and trailing spaces
 * and tabs trimmed; a folded line joins the value with one space. */
static void keep_value(buf *into, const char *v, size_t len, bool folded) {
    size_t i = 0;
    while (i < len && (v[i] == ' ' || (folded && v[i] == '\t'))) i++;
    while (len > i && (v[len - 1] == ' ' || v[len - 1] == '\t')) len--;
    if (folded) buf_add(into, " ", 1);
    else into->len = 0;
    buf_add(into, v + i, len - i);
}

static void head_bytes(http_framing *f, const char *p, size_t n, http_framing_edit *edit) {
    if (n == 0) return;
    /* evhttp cuts a line at a NUL and keeps what is before: "Authorization: s3cret\0junk" would
     * be taken as "s3cret", and what a proxy in front read as one value this node reads as
     * another. A NUL has no place in a head (RFC 9110 section 5.5): the request is refused. */
    const char *nul = memchr(p, '\0', n);
    /* Only a NUL within the header limit: past it evhttp refuses the head for its size, and
     * which comes first must not depend on how the bytes were cut into reads. */
    if (nul && f->head_size + f->line_len + (size_t)(nul - p) + 1 <= f->max_headers) {
        refuse(f, f->line_start, NUL_IN_HEAD, edit);
        return;
    }
    f->line_len += n;
    f->line_cr = p[n - 1] == '\r';
    /* evhttp refuses a head whose lines (without their ends) add up to more than its limit. */
    if (f->head_size + f->line_len - f->line_cr > f->max_headers) {
        f->state = ASIDE;
        return;
    }
    if (f->field == FIELD_OTHER) return;
    buf_add(&f->value, p, n);
    if (f->value.failed) f->state = ASIDE; /* out of memory: evhttp reads the rest alone */
    else if (f->field == FIELD_UNKNOWN) classify(f, false);
}

static void head_done(http_framing *f) {
    f->body_start = f->read;
    f->body_size = 0;
    if (!f->body_method) {
        next_request(f);
    } else if (f->seen_encoding && ascii_case_equal(f->encoding.data, f->encoding.len, "chunked")) {
        f->state = CHUNK_LINE;
        new_line(f);
    } else if (!f->seen_length) {
        next_request(f);
    } else {
        /* evhttp_get_body_length, which refuses a bad value (400) and closes. */
        char *end;
        const char *v = f->length.data ? f->length.data : "";
        long long n = strtoll(v, &end, 10);
        if (*v == '\0' || *end != '\0' || n < 0 || (uint64_t)n > f->max_body) f->state = ASIDE;
        else if (n == 0) next_request(f);
        else {
            f->state = BODY;
            f->left = (uint64_t)n;
        }
    }
}

static void head_line_end(http_framing *f) {
    size_t len = f->line_len - f->line_cr;
    if (f->field != FIELD_OTHER && f->line_cr) f->value.len--;
    if (f->head_lines > 0 && len == 0) {
        head_done(f);
        return;
    }
    if (f->field == FIELD_UNKNOWN && f->value.len > 0) classify(f, true);
    if (f->field == FIELD_ENCODING || f->field == FIELD_LENGTH) {
        const char *colon = memchr(f->value.data, ':', f->value.len);
        size_t skip = (size_t)(colon - f->value.data) + 1;
        keep_value(f->field == FIELD_ENCODING ? &f->encoding : &f->length, colon + 1, f->value.len - skip, false);
        if (f->field == FIELD_ENCODING) f->seen_encoding = true;
        else f->seen_length = true;
    } else if (f->field == FIELD_FOLD) {
        keep_value(f->last_field == FIELD_ENCODING ? &f->encoding : &f->length, f->value.data, f->value.len, true);
    }
    if (f->encoding.failed || f->length.failed) f->state = ASIDE;
    if (f->head_lines > 0 && f->field != FIELD_FOLD) f->last_field = f->field == FIELD_UNKNOWN ? FIELD_OTHER : f->field;
    f->head_size += len;
    f->head_lines++;
    if (f->state == HEAD) new_line(f);
}

/* ---- the chunked body ------------------------------------------------------------------------ */

static void chunk_line_end(http_framing *f, http_framing_edit *edit) {
    if (!f->line_cr) {
        refuse(f, f->line_start, BARE_LF, edit);
        return;
    }
    size_t len = f->line_len - 1;
    char *line = f->line.data;
    if (f->state == TRAILER) {
        if (len == 0) {
            next_request(f);
        } else if (!trailer_field_good(line, len)) {
            refuse(f, f->line_start, BAD_TRAILER, edit);
        } else if ((f->head_size += len) > f->max_headers) {
            refuse(f, f->line_start, BIG_TRAILER, edit);
        } else {
            new_line(f);
        }
        return;
    }
    uint64_t size;
    size_t digits;
    const char *why = http_framing_chunk_line(line ? line : "", len, &size, &digits);
    if (why) {
        refuse(f, f->line_start, why, edit);
        return;
    }
    if (size == UINT64_MAX || size > f->max_body - f->body_size) { /* UINT64_MAX: it overflowed */
        f->state = ASIDE; /* evhttp answers 413 and closes */
        return;
    }
    f->body_size += size;
    if (digits < len) {
        /* "5;name=value" -> "00000000005": the same length, the same number for strtoll. */
        memmove(line + len - digits, line, digits);
        memset(line, '0', len - digits);
        *edit = (http_framing_edit){.action = HTTP_FRAMING_REWRITE, .at = f->line_start, .bytes = line, .len = len};
    }
    if (size == 0) {
        f->state = TRAILER;
        new_line(f);
    } else {
        f->state = CHUNK_DATA;
        f->left = size;
    }
}

static void chunk_line_bytes(http_framing *f, const char *p, size_t n, http_framing_edit *edit) {
    if (n == 0) return;
    f->line_len += n;
    f->line_cr = p[n - 1] == '\r';
    if (f->line_len - f->line_cr > HTTP_FRAMING_LINE_MAX) {
        refuse(f, f->line_start, LONG_LINE, edit);
        return;
    }
    buf_add(&f->line, p, n);
    if (f->line.failed) f->state = ASIDE;
}

/* ---- reading ---------------------------------------------------------------------------------- */

uint64_t http_framing_unseen(const http_framing *f) {
    if (f->state == ASIDE) return UINT64_MAX;
    return f->state == BODY || f->state == CHUNK_DATA ? f->left : 0;
}

void http_framing_skip(http_framing *f, uint64_t n) {
    f->read += n;
    if (f->state == ASIDE || n == 0) return;
    f->left -= n;
    if (f->left > 0) return;
    if (f->state == BODY) {
        next_request(f);
    } else {
        f->state = CHUNK_CR;
        new_line(f); /* where evhttp reads its next line */
    }
}

size_t http_framing_read(http_framing *f, const char *data, size_t len, http_framing_edit *edit) {
    *edit = (http_framing_edit){.action = HTTP_FRAMING_NONE};
    size_t at = 0;
    while (at < len && edit->action == HTTP_FRAMING_NONE && f->state != ASIDE) {
        size_t step;
        switch (f->state) {
        case BODY:
        case CHUNK_DATA:
            step = len - at < f->left ? len - at : (size_t)f->left;
            http_framing_skip(f, step);
            at += step;
            break;
        case CHUNK_CR:
        case CHUNK_LF:
            if (data[at] != (f->state == CHUNK_CR ? '\r' : '\n')) {
                refuse(f, f->line_start, NO_CRLF, edit);
                break;
            }
            at++;
            f->read++;
            if (f->state == CHUNK_CR) {
                f->state = CHUNK_LF;
            } else {
                f->state = CHUNK_LINE;
                new_line(f);
            }
            break;
        default: { /* HEAD, CHUNK_LINE, TRAILER: a line */
            const char *lf = memchr(data + at, '\n', len - at);
            step = lf ? (size_t)(lf - (data + at)) : len - at;
            if (f->state == HEAD) head_bytes(f, data + at, step, edit);
            else chunk_line_bytes(f, data + at, step, edit);
            f->read += step;
            at += step;
            if (!lf || f->state == ASIDE) break;
            at++;
            f->read++;
            if (f->state == HEAD) head_line_end(f);
            else chunk_line_end(f, edit);
        }
        }
    }
    if (f->state == ASIDE && edit->action != HTTP_FRAMING_REFUSE) {
        f->read += len - at;
        at = len;
    }
    return at;
}
