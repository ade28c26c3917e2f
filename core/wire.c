/* wire: see wire.h.
 *
 * The parser is a small state machine over yajl's callbacks. Its position is the depth of the
 * container it is in (1: the top object, 2: a list array, 3: a record) plus the key it last
 * saw at that level; values under keys it does not know are skipped whole, whatever they
 * hold, but still count towards the nesting limit so that a deeply nested body costs nothing
 * to refuse. */
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

/* A record sits at depth 3; anything far deeper is not a message of this protocol. */
#define WIRE_MAX_DEPTH 32

typedef enum { TOP_NONE, TOP_MESSAGE, TOP_ONLINE, TOP_OFFLINE, TOP_OTHER } top_key;
typedef enum { FIELD_NONE, FIELD_BASE_URL, FIELD_MONITOR, FIELD_LAST_UPDATE, FIELD_OTHER } field_key;

typedef struct parser {
    wire_message *msg;
    wire_kind kind;
    int depth;      /* containers open, skipped ones included */
    int skip_depth; /* > 0 while inside a value under an unknown key */
    top_key top;
    field_key field;
    member_status list_status;
    size_t list_index; /* position of the current record in its list */
    bool in_record, record_has_url;
    size_t record_url_offset; /* into msg->urls, fixed up once parsing is done */
    bool seen_online, seen_message, message_ok;
    size_t body_len; /* sizes the first allocations (see on_start_map, append_url) */
    char *err;
    size_t err_len;
} parser;

static int fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->err_len, fmt, ap);
    va_end(ap);
    return 0; /* tells yajl to stop */
}

static const char *list_name(const parser *p) {
    return p->list_status == MEMBER_ONLINE ? "online" : "offline";
}

static const char *top_name(top_key t) {
    switch (t) {
    case TOP_MESSAGE: return "message";
    case TOP_ONLINE: return "online";
    case TOP_OFFLINE: return "offline";
    default: return "?";
    }
}

static wire_entry *current_entry(parser *p) { return &p->msg->entries[p->msg->count - 1]; }

static int append_url(parser *p, const unsigned char *s, size_t len);

/* A known field of a record holding a value of the wrong type (PROTOCOL.md merge rule 1, as
 * clarified): the record is kept, marked so that membership skips it and counts it, and the
 * rest of the message is still merged. A node of the original library relays whatever it was
 * given; refusing its whole message for one odd record would cut every link to it. A monitor
 * that is not a boolean reads as false; a baseUrl that is not a string, or a lastUpdate that
 * is not a number, makes the record one that is skipped. */
static int field_of_wrong_type(parser *p) {
    wire_entry *e = current_entry(p);
    switch (p->field) {
    case FIELD_BASE_URL:
        if (p->record_has_url) return 1; /* duplicate key: the first one wins */
        p->record_has_url = true;
        return append_url(p, (const unsigned char *)"", 0); /* not a URL: skipped */
    case FIELD_MONITOR: e->e.monitor = false; return 1;
    case FIELD_LAST_UPDATE: e->e.last_update_ok = false; return 1;
    default: return 1;
    }
}

/* Called for every scalar and container start. Returns 1 to go on, 0 after fail(). `what`
 * names the JSON type found, for the error message. */
static int expect_position(parser *p, const char *what, bool container) {
    if (p->skip_depth > 0) return 1;
    switch (p->depth) {
    case 0:
        return fail(p, "body: expected a JSON object, found %s", what);
    case 1:
        if (p->top == TOP_OTHER) return 1;
        if (p->kind == WIRE_CONTROL && p->top == TOP_ONLINE)
            return fail(p, "online: expected a boolean, found %s", what);
        if (p->top == TOP_MESSAGE) return fail(p, "message: expected a string, found %s", what);
        return fail(p, "%s: expected an array, found %s", top_name(p->top), what);
    case 2:
        return fail(p, "%s[%zu]: expected an object, found %s", list_name(p), p->list_index, what);
    case 3:
        return field_of_wrong_type(p);
    default:
        (void)container;
        return fail(p, "body: unexpected %s", what);
    }
}

static int enter_container(parser *p) {
    if (p->depth + 1 > WIRE_MAX_DEPTH) return fail(p, "body: nested deeper than %d levels", WIRE_MAX_DEPTH);
    p->depth++;
    if (p->skip_depth > 0) p->skip_depth++;
    return 1;
}

/* A container that is neither the top object, a list nor a record: the value of an unknown
 * key, skipped whole, or else something out of place. */
static int enter_other_container(parser *p, const char *what) {
    if (p->skip_depth == 0 && ((p->depth == 1 && p->top == TOP_OTHER) || p->depth == 3)) {
        /* Under a record's known field a container is a value of the wrong type. */
        if (p->depth == 3 && !field_of_wrong_type(p)) return 0;
        if (!enter_container(p)) return 0;
        p->skip_depth = 1;
        return 1;
    }
    if (!expect_position(p, what, true)) return 0;
    return enter_container(p);
}

static int on_start_map(void *ctx) {
    parser *p = ctx;
    if (p->skip_depth == 0 && p->depth == 0) return enter_container(p);
    if (p->skip_depth == 0 && p->depth == 2) {
        wire_message *m = p->msg;
        if (m->count == m->capacity) {
            /* A record takes about 80 bytes of JSON: sized from the body, the array is
             * allocated once rather than grown a dozen times for a large message. */
            size_t cap = m->capacity ? m->capacity * 2 : 16 + p->body_len / 64;
            wire_entry *e = realloc(m->entries, cap * sizeof *e);
            if (!e) return fail(p, "body: out of memory");
            m->entries = e;
            m->capacity = cap;
        }
        wire_entry *e = &m->entries[m->count++];
        memset(e, 0, sizeof *e);
        e->status = p->list_status;
        p->in_record = true;
        p->record_has_url = false;
        p->field = FIELD_NONE;
        return enter_container(p);
    }
    return enter_other_container(p, "an object");
}

static int on_end_map(void *ctx) {
    parser *p = ctx;
    p->depth--;
    if (p->skip_depth > 0) {
        p->skip_depth--;
        return 1;
    }
    if (p->depth == 2 && p->in_record) {
        p->in_record = false;
        /* Without a baseUrl the record names nobody: kept as an empty one, which
         * membership skips and counts like any other invalid URL. */
        if (!p->record_has_url && !append_url(p, (const unsigned char *)"", 0)) return 0;
        p->list_index++;
    }
    return 1;
}

static int on_start_array(void *ctx) {
    parser *p = ctx;
    if (p->skip_depth == 0 && p->depth == 1 && (p->top == TOP_ONLINE || p->top == TOP_OFFLINE) &&
        p->kind != WIRE_CONTROL) {
        p->list_status = p->top == TOP_ONLINE ? MEMBER_ONLINE : MEMBER_OFFLINE;
        p->list_index = 0;
        if (p->top == TOP_ONLINE) p->seen_online = true;
        return enter_container(p);
    }
    return enter_other_container(p, "an array");
}

static int on_end_array(void *ctx) { return on_end_map(ctx); }

static int on_map_key(void *ctx, const unsigned char *key, size_t len) {
    parser *p = ctx;
    if (p->skip_depth > 0) return 1;
#define KEY_IS(s) (len == sizeof(s) - 1 && memcmp(key, s, len) == 0)
    if (p->depth == 1) {
        /* A control message has no offline list: there "offline" is an unknown key, skipped
         * like any other (it used to be refused as "offline: expected an array, found an
         * array"). */
        p->top = KEY_IS("message") ? TOP_MESSAGE
                 : KEY_IS("online") ? TOP_ONLINE
                 : KEY_IS("offline") && p->kind != WIRE_CONTROL ? TOP_OFFLINE
                                                                : TOP_OTHER;
    } else if (p->depth == 3) {
        p->field = KEY_IS("baseUrl") ? FIELD_BASE_URL
                   : KEY_IS("monitor") ? FIELD_MONITOR
                   : KEY_IS("lastUpdate") ? FIELD_LAST_UPDATE
                                          : FIELD_OTHER;
    }
#undef KEY_IS
    return 1;
}

static int on_null(void *ctx) {
    parser *p = ctx;
    if (p->skip_depth == 0 && p->depth == 3) {
        /* A JavaScript peer writes NaN as null: not a finite integer, so the entry is
         * skipped by membership rather than the whole message refused. A null monitor means
         * false, as a missing one does. */
        if (p->field == FIELD_LAST_UPDATE) {
            current_entry(p)->e.last_update_ok = false;
            return 1;
        }
        if (p->field == FIELD_MONITOR) {
            current_entry(p)->e.monitor = false;
            return 1;
        }
    }
    return expect_position(p, "null", false);
}

static int on_boolean(void *ctx, int value) {
    parser *p = ctx;
    if (p->skip_depth == 0 && p->depth == 3 && p->field == FIELD_MONITOR) {
        current_entry(p)->e.monitor = value != 0;
        return 1;
    }
    if (p->skip_depth == 0 && p->depth == 1 && p->kind == WIRE_CONTROL && p->top == TOP_ONLINE) {
        p->msg->control_online = value != 0;
        p->seen_online = true;
        return 1;
    }
    return expect_position(p, "a boolean", false);
}

/* Reads a JSON number as a lastUpdate. Integers that fit are exact; other forms (1.7e12,
 * 5.0) are accepted when they denote an integer. A fraction is not a finite integer: the
 * entry will be skipped. A number that does not fit in 64 bits is refused. */
static int read_last_update(parser *p, const char *text, size_t len) {
    member_entry *e = &current_entry(p)->e;
    /* The common case, a plain non-negative integer that cannot overflow, read directly:
     * strtoll and its locale handling were a visible share of a large gossip request. */
    if (len > 0 && len <= 18) {
        int64_t v = 0;
        size_t i = 0;
        while (i < len && text[i] >= '0' && text[i] <= '9') v = v * 10 + (text[i++] - '0');
        if (i == len) {
            e->last_update = v;
            e->last_update_ok = true;
            return 1;
        }
    }
    char tmp[64];
    /* Out of range is not a finite 64-bit integer: the record is skipped, the message kept. */
    if (len >= sizeof tmp) {
        e->last_update_ok = false;
        return 1;
    }
    memcpy(tmp, text, len);
    tmp[len] = '\0';
    if (strpbrk(tmp, ".eE") == NULL) {
        errno = 0;
        char *end;
        long long v = strtoll(tmp, &end, 10);
        if (errno == ERANGE || *end != '\0') {
            e->last_update_ok = false;
            return 1;
        }
        e->last_update = v;
        e->last_update_ok = true;
        return 1;
    }
    double d = strtod(tmp, NULL);
    e->last_update_ok = isfinite(d) && fabs(d) < 9.2e18 && floor(d) == d;
    e->last_update = e->last_update_ok ? (int64_t)d : 0;
    return 1;
}

static int on_number(void *ctx, const char *text, size_t len) {
    parser *p = ctx;
    if (p->skip_depth == 0 && p->depth == 3 && p->field == FIELD_LAST_UPDATE)
        return read_last_update(p, text, len);
    return expect_position(p, "a number", false);
}

static int append_url(parser *p, const unsigned char *s, size_t len) {
    wire_message *m = p->msg;
    if (m->urls_len + len + 1 > m->urls_cap) {
        /* baseUrls are about a third of a record: see on_start_map. */
        size_t cap = m->urls_cap ? m->urls_cap : 256 + p->body_len / 2;
        while (cap < m->urls_len + len + 1) cap *= 2;
        char *u = realloc(m->urls, cap);
        if (!u) return fail(p, "body: out of memory");
        m->urls = u;
        m->urls_cap = cap;
    }
    wire_entry *e = current_entry(p);
    /* Offsets, not pointers, while the arena may still move. */
    e->e.base_url = (const char *)(uintptr_t)m->urls_len;
    e->e.url_len = len;
    memcpy(m->urls + m->urls_len, s, len);
    m->urls[m->urls_len + len] = '\0';
    m->urls_len += len + 1;
    return 1;
}

static int on_string(void *ctx, const unsigned char *s, size_t len) {
    parser *p = ctx;
    if (p->skip_depth == 0 && p->depth == 3 && p->field == FIELD_BASE_URL) {
        if (p->record_has_url) return 1; /* duplicate key: the first one wins */
        p->record_has_url = true;
        return append_url(p, s, len);
    }
    if (p->skip_depth == 0 && p->depth == 1 && p->top == TOP_MESSAGE) {
        const char *want = p->kind == WIRE_CONTROL ? "control" : "gossip";
        p->seen_message = true;
        p->message_ok = strlen(want) == len && memcmp(s, want, len) == 0;
        if (!p->message_ok && p->kind != WIRE_LIST)
            return fail(p, "message: expected \"%s\"", want);
        return 1;
    }
    return expect_position(p, "a string", false);
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

static bool check_complete(parser *p) {
    if (p->kind == WIRE_CONTROL) {
        if (!p->seen_message) return fail(p, "message: missing"), false;
        if (!p->seen_online) return fail(p, "online: missing"), false;
        return true;
    }
    if (p->kind == WIRE_GOSSIP && !p->seen_message) return fail(p, "message: missing"), false;
    if (!p->seen_online) return fail(p, "online: missing"), false;
    return true;
}

bool wire_parse(const char *body, size_t len, wire_kind kind, wire_message *out, char *err,
                size_t err_len) {
    wire_chunk whole = {body, len};
    return wire_parse_chunks(&whole, 1, kind, out, err, err_len);
}

bool wire_parse_chunks(const wire_chunk *body, size_t count, wire_kind kind, wire_message *out,
                       char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    parser p = {.msg = out, .kind = kind, .err = err, .err_len = err_len};
    for (size_t i = 0; i < count; i++) p.body_len += body[i].len;
    err[0] = '\0';
    yajl_handle h = yajl_alloc(&callbacks, NULL, &p);
    if (!h) {
        snprintf(err, err_len, "body: out of memory");
        return false;
    }
    /* yajl parses a stream: a token split between two pieces is joined in its own buffer. */
    yajl_status st = yajl_status_ok;
    for (size_t i = 0; i < count && st == yajl_status_ok; i++)
        st = yajl_parse(h, (const unsigned char *)body[i].data, body[i].len);
    if (st == yajl_status_ok) st = yajl_complete_parse(h);
    bool ok = st == yajl_status_ok;
    if (!ok && err[0] == '\0') {
        /* yajl's own words, one line, without the excerpt of the body it can add (which is
         * why it needs no text here). */
        unsigned char *why = yajl_get_error(h, 0, NULL, 0);
        const char *text = why ? (const char *)why : "parse error";
        snprintf(err, err_len, "body: not valid JSON (%.*s)", (int)strcspn(text, "\n"), text);
        if (why) yajl_free_error(h, why);
    }
    yajl_free(h);
    if (ok) ok = check_complete(&p);
    if (!ok) {
        wire_message_free(out);
        return false;
    }
    for (size_t i = 0; i < out->count; i++)
        out->entries[i].e.base_url = out->urls + (uintptr_t)out->entries[i].e.base_url;
    return true;
}

void wire_message_free(wire_message *msg) {
    free(msg->entries);
    free(msg->urls);
    memset(msg, 0, sizeof *msg);
}

const char *wire_member_json(member *r, size_t *len) {
    if (!r->wire) {
        /* baseUrl holds no character that JSON would need escaped (membership_url_valid). */
        buf b = {0};
        buf_printf(&b, "{\"baseUrl\":\"%s\",\"monitor\":%s,\"lastUpdate\":%" PRId64 "}",
                   r->base_url, r->monitor ? "true" : "false", r->last_update);
        r->wire = buf_take(&b, &r->wire_len);
        if (!r->wire) {
            *len = 0;
            return "";
        }
    }
    *len = r->wire_len;
    return r->wire;
}

/* The records of status `s` other than this node's, joined by commas; cached until one of
 * them changes (membership invalidates it), so that answering a gossip request with a large,
 * unchanged state is one copy instead of a walk over every record. */
static const peers_json *peers_of(membership *m, member_status s) {
    peers_json *cache = &m->peers[s];
    if (cache->text) return cache;
    buf joined = {0};
    buf_reserve(&joined, m->count * 100);
    for (size_t i = 0; i < m->count; i++) {
        member *r = m->members[i];
        if (r->status != s || r == m->self) continue;
        size_t len;
        const char *json = wire_member_json(r, &len);
        if (joined.len) buf_add(&joined, ",", 1);
        buf_add(&joined, json, len);
    }
    buf_add(&joined, "", 0); /* so that an empty list is "" rather than NULL */
    cache->text = buf_share(&joined, &cache->len);
    return cache;
}

/* This node's record, when it has status `s`, then the comma before the peers' records when
 * both are there. */
static void write_self(buf *out, membership *m, member_status s, const peers_json *peers) {
    if (m->self->status != s) return;
    size_t len;
    const char *json = wire_member_json(m->self, &len);
    buf_add(out, json, len);
    if (peers->text && peers->len) buf_add(out, ",", 1);
}

void wire_list_parts_get(wire_list_parts *p, membership *m, unsigned flags) {
    *p = (wire_list_parts){0};
    const peers_json *online = peers_of(m, MEMBER_ONLINE);
    buf_add_str(&p->text[0], flags & WIRE_WITH_MESSAGE ? "{\"message\":\"gossip\",\"online\":[" : "{\"online\":[");
    write_self(&p->text[0], m, MEMBER_ONLINE, online);
    p->peers[0] = online->len ? online->text : NULL;
    p->peers_len[0] = online->len;
    if (flags & WIRE_WITH_OFFLINE) {
        const peers_json *offline = peers_of(m, MEMBER_OFFLINE);
        buf_add_str(&p->text[1], "],\"offline\":[");
        write_self(&p->text[1], m, MEMBER_OFFLINE, offline);
        p->peers[1] = offline->len ? offline->text : NULL;
        p->peers_len[1] = offline->len;
    }
    buf_add_str(&p->text[2], "]}");
    for (int i = 0; i < 2; i++) buf_shared_hold(p->peers[i]);
    p->failed = p->text[0].failed || p->text[1].failed || p->text[2].failed ||
                !online->text || ((flags & WIRE_WITH_OFFLINE) && !m->peers[MEMBER_OFFLINE].text);
}

void wire_list_parts_free(wire_list_parts *p) {
    for (int i = 0; i < 3; i++) buf_free(&p->text[i]);
    for (int i = 0; i < 2; i++) buf_shared_drop(p->peers[i]);
    *p = (wire_list_parts){0};
}

void wire_list_parts_join(const wire_list_parts *p, buf *out) {
    if (p->failed) {
        out->failed = true;
        return;
    }
    buf_reserve(out, p->text[0].len + p->peers_len[0] + p->text[1].len + p->peers_len[1] + p->text[2].len);
    for (int i = 0; i < 3; i++) {
        if (p->text[i].len) buf_add(out, p->text[i].data, p->text[i].len); /* text[1] may be empty */
        if (i < 2 && p->peers[i]) buf_add(out, p->peers[i], p->peers_len[i]);
    }
}

void wire_write_list(buf *out, membership *m, unsigned flags) {
    wire_list_parts p;
    wire_list_parts_get(&p, m, flags);
    wire_list_parts_join(&p, out);
    wire_list_parts_free(&p);
}

/* The records of status `s` compressed, cached beside their text until one of them changes;
 * NULL when out of memory. */
static const codec_segment *peers_coded(membership *m, member_status s, codec *c, codec_kind k) {
    peers_json *cache = &m->peers[s];
    if (!peers_of(m, s)->text) return NULL;
    if (!cache->coded[k].data && !codec_segment_make(c, k, cache->text, cache->len, &cache->coded[k])) return NULL;
    return &cache->coded[k];
}

void wire_list_parts_coded(wire_list_parts *p, membership *m, unsigned flags, codec *c, codec_kind k) {
    wire_list_parts plain;
    wire_list_parts_get(&plain, m, flags);
    *p = (wire_list_parts){.failed = plain.failed};
    codec_writer w;
    codec_writer_begin(&w, c, k, &p->text[0]);
    for (int i = 0; i < 3 && !p->failed; i++) {
        codec_writer_text(&w, plain.text[i].data, plain.text[i].len, &p->text[i]);
        if (i == 2 || !plain.peers[i]) continue;
        const codec_segment *seg = peers_coded(m, i == 0 ? MEMBER_ONLINE : MEMBER_OFFLINE, c, k);
        if (!seg) {
            p->failed = true;
            break;
        }
        codec_writer_segment(&w, seg);
        buf_shared_hold(seg->data);
        p->peers[i] = seg->data;
        p->peers_len[i] = seg->len;
    }
    codec_writer_end(&w, &p->text[2]);
    p->failed = p->failed || p->text[0].failed || p->text[1].failed || p->text[2].failed;
    wire_list_parts_free(&plain);
}

/* The length of what record_json writes for `r`, digit by digit, so that wire_list_size can
 * count what a list would weigh without writing it (spec/c/test_wire.c holds the two equal). */
static size_t member_json_size(const member *r) {
    static const size_t fixed = sizeof "{\"baseUrl\":\"\",\"monitor\":,\"lastUpdate\":}" - 1;
    /* The digits of lastUpdate, counted rather than printed: this runs for every record of
     * every simulated message. */
    int64_t v = r->last_update;
    size_t digits = v < 0 ? 2 : 1; /* a sign, and the last digit */
    while (v / 10 != 0) {
        v /= 10;
        digits++;
    }
    return fixed + r->url_len + (r->monitor ? 4 : 5) + digits;
}

size_t wire_list_size(const membership *m, unsigned flags) {
    size_t size = strlen(flags & WIRE_WITH_MESSAGE ? "{\"message\":\"gossip\",\"online\":[" : "{\"online\":[") + 2;
    if (flags & WIRE_WITH_OFFLINE) size += strlen("],\"offline\":[");
    size_t listed[2] = {0, 0};
    for (size_t i = 0; i < m->count; i++) {
        const member *r = m->members[i];
        if (r->status == MEMBER_OFFLINE && !(flags & WIRE_WITH_OFFLINE)) continue;
        size += member_json_size(r);
        listed[r->status]++;
    }
    for (int s = 0; s < 2; s++)
        if (listed[s] > 1) size += listed[s] - 1; /* the commas */
    return size;
}

void wire_write_string(buf *out, const char *s) {
    buf_add(out, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char esc[2] = {'\\', (char)*c};
            buf_add(out, esc, 2);
        } else if (*c < 0x20) {
            buf_printf(out, "\\u%04x", *c);
        } else {
            buf_add(out, c, 1);
        }
    }
    buf_add(out, "\"", 1);
}

void wire_write_error(buf *out, const char *message) {
    buf_add_str(out, "{\"error\":");
    wire_write_string(out, message);
    buf_add_str(out, "}");
}
