/* wire: JSON <-> records, for every message of PROTOCOL.md.
 *
 * Parsing is a single streaming pass (yajl's callbacks; no document tree: chosen by
 * measurement, see README) into a flat list of entries, and it either accepts the whole body
 * or rejects it with a message naming the field, so that a rejected request changes nothing.
 * Only the shape of the message is refused (not JSON, not an object, no online array, a wrong
 * message, a list item that is not an object). Inside a record anything goes: a field of the
 * wrong type or a missing baseUrl marks the record, and membership skips and counts it (merge
 * rule 1), so one odd record relayed by a peer does not cut that peer off. */
#ifndef SHAZBOT_WIRE_H
#define SHAZBOT_WIRE_H

#include "buf.h"
#include "codec.h"
#include "membership.h"

typedef enum {
    WIRE_LIST,    /* {"online":[...],"offline":[...]}: master lists */
    WIRE_GOSSIP,  /* a list with "message":"gossip" */
    WIRE_CONTROL, /* {"message":"control","online":true|false} */
} wire_kind;

/* An entry as parsed: the record and the list it arrived in. */
typedef member_update wire_entry;

typedef struct wire_message {
    wire_entry *entries;
    size_t count, capacity;
    char *urls; /* every entry's baseUrl, NUL-separated; entries point into it */
    size_t urls_len, urls_cap;
    bool control_online;
} wire_message;

/* A body in pieces, as a network buffer holds it. Parsing the pieces where they lie spares
 * copying a large body into one block first (850 KB for 10,000 records). */
typedef struct wire_chunk {
    const char *data;
    size_t len;
} wire_chunk;

/* Parses `body` as a message of `kind`. Returns true on success; otherwise writes a message
 * such as `online[3].monitor: expected a boolean` to `err`. */
bool wire_parse(const char *body, size_t len, wire_kind kind, wire_message *out, char *err,
                size_t err_len);
/* The same for a body in `count` pieces, read in order. */
bool wire_parse_chunks(const wire_chunk *body, size_t count, wire_kind kind, wire_message *out,
                       char *err, size_t err_len);
void wire_message_free(wire_message *msg);

enum {
    WIRE_WITH_MESSAGE = 1, /* "message":"gossip" first */
    WIRE_WITH_OFFLINE = 2,
};
/* Writes the state as a list (flags above). Uses and fills the per-record cache. */
void wire_write_list(buf *out, membership *m, unsigned flags);
/* The same list in five parts, for a server that sends them without joining them: the records
 * of the peers are the state's cached text itself (shared bytes, buf.h), held by the parts
 * until wire_list_parts_free, so that any number of answers weigh one copy of the state; the
 * text around them (brackets, this node's record, which changes with nearly every request)
 * is the parts' own. The list is text[0] peers[0] text[1] peers[1] text[2], a NULL peers[i]
 * being empty. */
typedef struct wire_list_parts {
    buf text[3];
    const char *peers[2]; /* by member_status */
    size_t peers_len[2];
    bool failed; /* out of memory: the parts are incomplete */
} wire_list_parts;
void wire_list_parts_get(wire_list_parts *p, membership *m, unsigned flags);
void wire_list_parts_free(wire_list_parts *p);
/* The parts joined into `out` (what wire_write_list writes, for parts of either kind). */
void wire_list_parts_join(const wire_list_parts *p, buf *out);
/* The same list compressed as `k` (gzip or zstd), in the same five parts: the peers' parts
 * are their cached text compressed once (codec_segment, cached beside the text), the text
 * around them compressed for this list, the coding's header in text[0] and its end in
 * text[2]. Joined, one body of that coding. */
void wire_list_parts_coded(wire_list_parts *p, membership *m, unsigned flags, codec *c, codec_kind k);
/* The bytes wire_write_list would write, without writing them (the simulator's count). */
size_t wire_list_size(const membership *m, unsigned flags);
/* One record's JSON object, cached on the record until it changes. */
const char *wire_member_json(member *r, size_t *len);

/* Writes `"` + s + `"` with JSON escaping. */
void wire_write_string(buf *out, const char *s);
/* {"error":"<message>"} */
void wire_write_error(buf *out, const char *message);

#endif
