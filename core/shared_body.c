/* shared_body: see shared_body.h. */
#include "shared_body.h"

#include <stdlib.h>
#include <string.h>

struct shared_body {
    size_t refs;
    size_t len;
    char *data; /* NUL-terminated */
    char *coded[CODEC_ZSTD + 1]; /* by codec_kind, NULL until asked for */
    size_t coded_len[CODEC_ZSTD + 1];
};

shared_body *shared_body_take(buf *b) {
    size_t len;
    char *data = buf_take(b, &len);
    shared_body *s = data ? malloc(sizeof *s) : NULL;
    if (!s) {
        free(data);
        return NULL;
    }
    *s = (shared_body){.refs = 1, .len = len, .data = data};
    return s;
}

shared_body *shared_body_copy(const char *data, size_t len) {
    buf b = {0};
    buf_add(&b, data ? data : "", len);
    return shared_body_take(&b);
}

shared_body *shared_body_ref(shared_body *s) {
    s->refs++;
    return s;
}

void shared_body_unref(shared_body *s) {
    if (!s || --s->refs > 0) return;
    free(s->data);
    for (int k = 0; k <= CODEC_ZSTD; k++) free(s->coded[k]);
    free(s);
}

const char *shared_body_data(const shared_body *s) { return s->data; }
size_t shared_body_len(const shared_body *s) { return s->len; }

const char *shared_body_coded(shared_body *s, codec *c, codec_kind k, size_t *len) {
    if (!s->coded[k]) {
        buf b = {0};
        codec_encode(c, k, s->data, s->len, &b);
        if (b.failed) {
            buf_free(&b);
            return NULL;
        }
        s->coded[k] = buf_take(&b, &s->coded_len[k]);
        if (!s->coded[k]) return NULL;
    }
    *len = s->coded_len[k];
    return s->coded[k];
}
