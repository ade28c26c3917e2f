/* The list parser (wire.h) and the merge (membership.h), on any body.
 *
 * Input: one byte choosing the kind of message ('l' list, 'g' gossip, 'c' control), one
 * choosing how the body is cut into pieces (fuzz.h), then the body. Properties:
 *   - parsed whole, in pieces and one byte at a time: the same verdict, the same error, the
 *     same entries; a refusal names what it refuses (body, message, online or offline);
 *   - merged at once (membership_merge_all) or one by one (membership_merge): the same state
 *     and the same counts of skipped entries; merged a second time: nothing changes;
 *   - the state written (wire_write_list) is JSON, weighs what wire_list_size says, and read
 *     back gives exactly its records, which merged into a fresh node give the same records. */
#include "fuzz.h"
#include "membership.h"

#define SELF "http://127.0.0.1:7001/"
#define NOW_MS 1795478695140LL
#define SKEW_MS 300000

static const unsigned all_flags[] = {0, WIRE_WITH_MESSAGE, WIRE_WITH_OFFLINE, WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE};

static buf state_of(membership *m) {
    buf b = {0};
    wire_write_list(&b, m, WIRE_WITH_MESSAGE | WIRE_WITH_OFFLINE);
    FUZZ_ASSERT(!b.failed, "out of memory");
    return b;
}

static bool same_buf(const buf *a, const buf *b) {
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void check_parse_agrees(const char *body, size_t len, wire_kind kind, uint8_t split) {
    wire_message whole, pieces, bytes;
    char err_whole[256], err_pieces[256], err_bytes[256];
    size_t n;
    wire_chunk *chunks = fuzz_split_alloc(body, len, split ? split : 1, &n);
    bool ok_whole = wire_parse(body, len, kind, &whole, err_whole, sizeof err_whole);
    bool ok_pieces = wire_parse_chunks(chunks, n, kind, &pieces, err_pieces, sizeof err_pieces);
    free(chunks);
    chunks = fuzz_split_alloc(body, len, 0, &n);
    bool ok_bytes = wire_parse_chunks(chunks, n, kind, &bytes, err_bytes, sizeof err_bytes);
    free(chunks);
    FUZZ_ASSERT(ok_whole == ok_pieces && ok_whole == ok_bytes, "verdicts %d %d %d", ok_whole, ok_pieces, ok_bytes);
    if (!ok_whole) {
        FUZZ_ASSERT(strcmp(err_whole, err_pieces) == 0 && strcmp(err_whole, err_bytes) == 0,
                    "errors \"%s\" / \"%s\" / \"%s\"", err_whole, err_pieces, err_bytes);
        static const char *const fields[] = {"body", "message", "online", "offline"};
        bool named = false;
        for (size_t i = 0; i < 4; i++)
            named = named || (strncmp(err_whole, fields[i], strlen(fields[i])) == 0 &&
                              (err_whole[strlen(fields[i])] == ':' || err_whole[strlen(fields[i])] == '['));
        FUZZ_ASSERT(named, "a refusal that names no field: \"%s\"", err_whole);
        return;
    }
    fuzz_same_message(&whole, &pieces);
    fuzz_same_message(&whole, &bytes);
    wire_message_free(&pieces);
    wire_message_free(&bytes);
    if (kind == WIRE_CONTROL) {
        FUZZ_ASSERT(whole.count == 0, "a control message with entries");
        wire_message_free(&whole);
        return;
    }

    membership *at_once = membership_new(SELF, false, NOW_MS, SKEW_MS);
    membership *one_by_one = membership_new(SELF, false, NOW_MS, SKEW_MS);
    FUZZ_ASSERT(at_once && one_by_one, "out of memory");
    membership_merge_all(at_once, whole.entries, whole.count, NOW_MS);
    for (size_t i = 0; i < whole.count; i++)
        membership_merge(one_by_one, &whole.entries[i].e, whole.entries[i].status, NOW_MS);
    buf a = state_of(at_once), b = state_of(one_by_one);
    FUZZ_ASSERT(same_buf(&a, &b), "merged at once:\n%s\none by one:\n%s", a.data, b.data);
    FUZZ_ASSERT(memcmp(&at_once->stats, &one_by_one->stats, sizeof at_once->stats) == 0, "counts of skipped entries differ");
    FUZZ_ASSERT(membership_count(at_once, MEMBER_ONLINE) + membership_count(at_once, MEMBER_OFFLINE) == at_once->count,
                "online + offline != count");

    /* The same message again: every entry is now known and not newer. */
    membership_merge_all(at_once, whole.entries, whole.count, NOW_MS);
    buf again = state_of(at_once);
    FUZZ_ASSERT(same_buf(&a, &again), "a second merge changed the state");
    buf_free(&again);
    wire_message_free(&whole);

    for (size_t f = 0; f < 4; f++) {
        buf out = {0};
        wire_write_list(&out, at_once, all_flags[f]);
        FUZZ_ASSERT(fuzz_json_valid(out.data, out.len), "written list is not JSON: %s", out.data);
        FUZZ_ASSERT(wire_list_size(at_once, all_flags[f]) == out.len, "wire_list_size %zu, written %zu",
                    wire_list_size(at_once, all_flags[f]), out.len);
        buf_free(&out);
    }

    /* Read back: exactly the records, each once. */
    wire_message back;
    char err[256];
    FUZZ_ASSERT(wire_parse(a.data, a.len, WIRE_GOSSIP, &back, err, sizeof err), "written list refused: %s\n%s", err, a.data);
    FUZZ_ASSERT(back.count == at_once->count, "%zu records written, %zu read back", at_once->count, back.count);
    membership *fresh = membership_new(SELF, false, NOW_MS, SKEW_MS);
    FUZZ_ASSERT(fresh, "out of memory");
    for (size_t i = 0; i < back.count; i++) {
        const wire_entry *x = &back.entries[i];
        const member *r = membership_find(at_once, x->e.base_url, x->e.url_len);
        FUZZ_ASSERT(r && x->e.last_update_ok && r->last_update == x->e.last_update && r->monitor == x->e.monitor &&
                        r->status == x->status,
                    "record %zu read back differs", i);
        FUZZ_ASSERT(membership_url_valid(x->e.base_url, x->e.url_len), "an invalid baseUrl in state");
    }
    membership_merge_all(fresh, back.entries, back.count, NOW_MS);
    FUZZ_ASSERT(fresh->count == at_once->count, "%zu records, %zu after a round trip", at_once->count, fresh->count);
    for (size_t i = 0; i < at_once->count; i++) {
        const member *r = at_once->members[i];
        if (r == at_once->self) continue; /* the own record is the node's own, not a peer's */
        const member *q = membership_find(fresh, r->base_url, r->url_len);
        FUZZ_ASSERT(q && q->last_update == r->last_update && q->monitor == r->monitor && q->status == r->status,
                    "%s differs after a round trip", r->base_url);
    }
    wire_message_free(&back);
    membership_free(fresh);
    buf_free(&a);
    buf_free(&b);
    membership_free(at_once);
    membership_free(one_by_one);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    /* 'l', 'g' and 'c' for the seeds written by hand; any other byte picks one too. */
    uint8_t k = data[0] == 'l' ? 0 : data[0] == 'g' ? 1 : data[0] == 'c' ? 2 : data[0] % 3;
    wire_kind kind = k == 0 ? WIRE_LIST : k == 1 ? WIRE_GOSSIP : WIRE_CONTROL;
    check_parse_agrees((const char *)data + 2, size - 2, kind, data[1]);
    return 0;
}
