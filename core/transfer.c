/* transfer: see transfer.h.
 *
 * libcurl tells us, through CURLMOPT_SOCKETFUNCTION, which sockets it wants watched and, via
 * CURLMOPT_TIMERFUNCTION, when it next needs a kick; we map those onto libevent events and
 * report readiness back with curl_multi_socket_action. Finished transfers are collected after
 * every action.
 *
 * Compression. Every request asks for compressed answers (Accept-Encoding), which libcurl
 * decodes; the bytes kept of an answer are counted decoded, so the answer limit bounds a
 * compressed one too. A gossip body (transfer_request.compressible) goes compressed as each
 * peer takes it, remembered per peer URL:
 *   - a peer never heard from gets gzip, which every known peer reads: this node, and the
 *     original library, whose Express body parser inflates gzip and deflate;
 *   - a peer whose answer says which codings it reads (Accept-Encoding in an answer, RFC 7694,
 *     as this node's answers say "zstd, gzip, deflate") gets the best of them: zstd;
 *   - a peer that refuses a compressed body, 415 (RFC 7694's answer to a coding a server does
 *     not read) or 400 (a peer that took the bytes for JSON: a node of an earlier build, a
 *     host routing bodies to the C API itself), is sent the same request again at once, in
 *     a coding its 415 named or plain, and gets that from then on.
 * A body below CODEC_MIN_SIZE always goes plain. SHAZBOT_COMPRESSION caps the coding. */
#include "transfer.h"

#include "buf.h"
#include "codec.h"
#include "log.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* What a peer is sent, by the URL its gossip goes to. */
typedef struct peer_coding {
    struct peer_coding *next;
    codec_kind coding;
    char url[];
} peer_coding;

/* Past this many peers the table starts again (a peer not in it gets gzip, as at first). */
#define PEER_CODINGS_MAX 65536

struct transfer_pool {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    size_t max_response;
    codec_kind compression;
    log_level log_limit;
    /* TLS settings (transfer_pool_tls), our copies; NULL: curl's defaults. */
    char *tls_ca, *tls_cert, *tls_key, *tls_pin;
    codec *codec;
    peer_coding **peers; /* hash buckets */
    size_t peer_buckets, peer_count;
    struct job *jobs; /* under way, so that freeing the pool can cancel them */
};

typedef struct job {
    transfer_pool *pool;
    struct job *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    shared_body *request_body; /* referenced (a fan-out's, shared) or our own copy */
    char *url;                 /* of a compressible request: the key of its peer's coding */
    codec_kind sent;           /* the coding of the body as sent */
    bool resent;               /* sent again after a refusal of its coding */
    long timeout_ms;
    int64_t started_ms;        /* monotonic */
    /* The answer's headers of interest (of the last answer, when there were several). */
    char *announced; /* Accept-Encoding: the codings the peer reads */
    char *answer_coding; /* Content-Encoding */
    buf response;
    char *etag;
    bool too_large;
    transfer_done_fn done;
    void *arg;
    char error[CURL_ERROR_SIZE];
} job;

/* ---- what each peer is sent --------------------------------------------------------------- */

static size_t url_bucket(const transfer_pool *pool, const char *url) {
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *c = (const unsigned char *)url; *c; c++) h = (h ^ *c) * 1099511628211ULL;
    return (size_t)(h & (pool->peer_buckets - 1));
}

static void peers_clear(transfer_pool *pool) {
    for (size_t i = 0; i < pool->peer_buckets; i++) {
        while (pool->peers[i]) {
            peer_coding *p = pool->peers[i];
            pool->peers[i] = p->next;
            free(p);
        }
    }
    pool->peer_count = 0;
}

static peer_coding *peer_find(const transfer_pool *pool, const char *url) {
    if (!pool->peers) return NULL;
    for (peer_coding *p = pool->peers[url_bucket(pool, url)]; p; p = p->next)
        if (strcmp(p->url, url) == 0) return p;
    return NULL;
}

/* The coding a body for `url` goes in (before the size and the setting cap it). */
static codec_kind peer_coding_of(const transfer_pool *pool, const char *url) {
    const peer_coding *p = peer_find(pool, url);
    return p ? p->coding : CODEC_GZIP;
}

/* Remembers what `url` is sent; out of memory, it is not remembered (it gets gzip again). */
static void peer_remember(transfer_pool *pool, const char *url, codec_kind coding) {
    peer_coding *p = peer_find(pool, url);
    if (p) {
        p->coding = coding;
        return;
    }
    if (pool->peer_count >= PEER_CODINGS_MAX) peers_clear(pool);
    if (pool->peer_count >= pool->peer_buckets) {
        /* Twice the buckets, the entries moved over; the old ones kept if that fails. */
        size_t n = pool->peer_buckets ? 2 * pool->peer_buckets : 64;
        peer_coding **b = calloc(n, sizeof *b);
        if (!b) return;
        peer_coding **old = pool->peers;
        size_t old_n = pool->peer_buckets;
        pool->peers = b;
        pool->peer_buckets = n;
        for (size_t i = 0; i < old_n; i++) {
            while (old[i]) {
                peer_coding *e = old[i];
                old[i] = e->next;
                size_t slot = url_bucket(pool, e->url);
                e->next = b[slot];
                b[slot] = e;
            }
        }
        free(old);
    }
    size_t len = strlen(url);
    p = malloc(sizeof *p + len + 1);
    if (!p) return;
    memcpy(p->url, url, len + 1);
    p->coding = coding;
    size_t slot = url_bucket(pool, url);
    p->next = pool->peers[slot];
    pool->peers[slot] = p;
    pool->peer_count++;
}

static int64_t monotonic_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void job_free(job *j) {
    transfer_pool *pool = j->pool;
    if (j->prev) j->prev->next = j->next;
    else if (pool->jobs == j) pool->jobs = j->next;
    if (j->next) j->next->prev = j->prev;
    if (j->easy) {
        /* Fails only for a handle the multi does not hold (one that never got added). */
        CURLMcode rc = curl_multi_remove_handle(pool->multi, j->easy);
        if (rc != CURLM_OK && rc != CURLM_BAD_EASY_HANDLE) log_warn(LOG_WARN, "transfers: %s", curl_multi_strerror(rc));
        curl_easy_cleanup(j->easy);
    }
    curl_slist_free_all(j->headers);
    shared_body_unref(j->request_body);
    free(j->url);
    free(j->announced);
    free(j->answer_coding);
    free(j->etag);
    buf_free(&j->response);
    free(j);
}

/* One per socket curl asked us to watch. */
typedef struct watch {
    struct event *ev;
} watch;

static bool send_body(job *j, codec_kind coding);

/* After a refusal of a compressed body (415, or 400 from a peer that took it for JSON): the
 * same request again at once, in `coding`, within what is left of its timeout. False when it
 * could not be sent, the refusal then being the answer. */
static bool resend(job *j, codec_kind coding) {
    transfer_pool *pool = j->pool;
    long left = j->timeout_ms - (long)(monotonic_ms() - j->started_ms);
    if (left < 1 || curl_multi_remove_handle(pool->multi, j->easy) != CURLM_OK) return false;
    j->resent = true;
    buf_free(&j->response);
    free(j->etag);
    free(j->announced);
    free(j->answer_coding);
    j->etag = j->announced = j->answer_coding = NULL;
    j->error[0] = '\0';
    curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, left);
    curl_easy_setopt(j->easy, CURLOPT_CONNECTTIMEOUT_MS, left);
    return send_body(j, coding) && curl_multi_add_handle(pool->multi, j->easy) == CURLM_OK;
}

/* What a gossip answer says of its peer's codings, remembered; true when the request went
 * out again instead (resend), its answer to come later. */
static bool learn_peer(job *j, long status) {
    transfer_pool *pool = j->pool;
    if (j->announced) peer_remember(pool, j->url, codec_accepted(j->announced, CODEC_ZSTD));
    if (j->sent == CODEC_IDENTITY || j->resent || (status != 415 && status != 400)) return false;
    codec_kind next = status == 415 && j->announced ? codec_accepted(j->announced, CODEC_ZSTD) : CODEC_IDENTITY;
    if (next >= j->sent) next = CODEC_IDENTITY; /* a 415 that names the coding refused is not believed */
    peer_remember(pool, j->url, next);
    log_info(pool->log_limit, "peer %s answered %ld to a %s body: sending it %s from now on", j->url, status,
             codec_name(j->sent), next == CODEC_IDENTITY ? "plain" : codec_name(next));
    return resend(j, next);
}

/* The bytes of a gossip exchange as they went over the wire, and as JSON. */
static void log_exchange(const job *j, const transfer_result *r) {
    curl_off_t sent = 0, received = 0;
    curl_easy_getinfo(j->easy, CURLINFO_SIZE_UPLOAD_T, &sent);
    curl_easy_getinfo(j->easy, CURLINFO_SIZE_DOWNLOAD_T, &received);
    if (!r->ok) {
        log_debug(j->pool->log_limit, "gossip %s: sent %" CURL_FORMAT_CURL_OFF_T " bytes %s (%zu plain), failed: %s",
                  j->url, sent, codec_name(j->sent), shared_body_len(j->request_body), r->error);
        return;
    }
    log_debug(j->pool->log_limit,
              "gossip %s: sent %" CURL_FORMAT_CURL_OFF_T " bytes %s (%zu plain), answer %ld of %" CURL_FORMAT_CURL_OFF_T
              " bytes %s (%zu plain)",
              j->url, sent, codec_name(j->sent), shared_body_len(j->request_body), r->status, received,
              j->answer_coding ? j->answer_coding : "identity", r->body_len);
}

static void check_finished(transfer_pool *pool) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(pool->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) continue;
        job *j;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        CURLcode code = msg->data.result;
        transfer_result r = {0};
        if (code == CURLE_OK) {
            r.ok = true;
            curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &r.status);
            if (j->url && learn_peer(j, r.status)) continue;
        } else {
            r.error = j->too_large ? "answer larger than the body limit"
                      : j->error[0] ? j->error
                                    : curl_easy_strerror(code);
        }
        r.body = j->response.data ? j->response.data : "";
        r.body_len = j->response.len;
        r.etag = j->etag;
        r.too_large = j->too_large;
        if (j->url) log_exchange(j, &r);
        /* The callback may start new transfers; the finished one is still in the multi
         * handle until job_free, which curl allows. */
        j->done(j->arg, &r);
        job_free(j);
    }
}

/* curl_multi_socket_action fails only on misuse or when out of memory; the transfers it
 * could not drive still finish through their own timeouts at the next action, so a failure is
 * logged rather than acted on. */
static void socket_action(transfer_pool *pool, curl_socket_t fd, int flags) {
    int running;
    CURLMcode rc = curl_multi_socket_action(pool->multi, fd, flags, &running);
    if (rc != CURLM_OK) log_warn(LOG_WARN, "transfers: %s", curl_multi_strerror(rc));
    check_finished(pool);
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg) {
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    socket_action(arg, fd, flags);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *arg) {
    (void)multi;
    transfer_pool *pool = arg;
    if (timeout_ms < 0) {
        evtimer_del(pool->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    return evtimer_add(pool->timer, &tv) == 0 ? 0 : -1;
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *arg, void *socket_arg) {
    (void)easy;
    transfer_pool *pool = arg;
    watch *w = socket_arg;
    if (what == CURL_POLL_REMOVE) {
        if (w) {
            event_free(w->ev);
            free(w);
            /* It fails only for a socket curl has already forgotten, which leaves nothing to undo. */
            (void)curl_multi_assign(pool->multi, s, NULL);
        }
        return 0;
    }
    short events = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w) return -1;
        if (curl_multi_assign(pool->multi, s, w) != CURLM_OK) {
            free(w);
            return -1;
        }
    } else {
        event_free(w->ev);
    }
    /* Returning -1 makes curl fail the transfers on this socket, which is what a socket we
     * cannot watch needs: they end with an error instead of hanging until their timeout. */
    w->ev = event_new(pool->base, s, events, on_socket_event, pool);
    if (!w->ev || event_add(w->ev, NULL) != 0) return -1;
    return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
    job *j = arg;
    size_t len = size * n;
    if (j->response.len + len > j->pool->max_response) {
        j->too_large = true;
        return 0; /* makes curl fail the transfer */
    }
    buf_add(&j->response, data, len);
    return j->response.failed ? 0 : len;
}

/* Keeps the value of header `name` (with its colon) in *value when the line is that header. */
static void keep_header(const char *line, size_t len, const char *name, char **value) {
    size_t name_len = strlen(name);
    if (len <= name_len || strncasecmp(line, name, name_len) != 0) return;
    const char *v = line + name_len;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    free(*value);
    *value = strndup(v, (size_t)(end - v));
}

static size_t on_header(char *data, size_t size, size_t n, void *arg) {
    job *j = arg;
    size_t len = size * n;
    if (len > 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new answer (after a 1xx): only its own headers count. */
        free(j->announced);
        free(j->answer_coding);
        j->announced = j->answer_coding = NULL;
    }
    keep_header(data, len, "ETag:", &j->etag);
    keep_header(data, len, "Accept-Encoding:", &j->announced);
    keep_header(data, len, "Content-Encoding:", &j->answer_coding);
    return len;
}

transfer_pool *transfer_pool_new(struct event_base *base, size_t max_response, codec_kind compression,
                                 log_level log_limit) {
    /* curl_global_init is reference counted and not thread-safe before 7.84; hosts call us
     * from their main thread. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
    transfer_pool *pool = calloc(1, sizeof *pool);
    if (!pool) goto fail;
    pool->base = base;
    pool->max_response = max_response;
    pool->compression = compression;
    pool->log_limit = log_limit;
    pool->codec = codec_new();
    pool->multi = curl_multi_init();
    pool->timer = evtimer_new(base, on_timeout, pool);
    if (!pool->codec || !pool->multi || !pool->timer) goto fail;
    if (curl_multi_setopt(pool->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(pool->multi, CURLMOPT_SOCKETDATA, pool) != CURLM_OK ||
        curl_multi_setopt(pool->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(pool->multi, CURLMOPT_TIMERDATA, pool) != CURLM_OK)
        goto fail;
    return pool;
fail:
    transfer_pool_free(pool);
    return NULL;
}

static bool dup_or_null(char **dst, const char *src) {
    *dst = src ? strdup(src) : NULL;
    return !src || *dst;
}

bool transfer_pool_tls(transfer_pool *pool, const char *ca, const char *cert, const char *key, const char *pin) {
    char *c = NULL, *ce = NULL, *k = NULL, *p = NULL;
    if (!dup_or_null(&c, ca) || !dup_or_null(&ce, cert) || !dup_or_null(&k, key) || !dup_or_null(&p, pin)) {
        free(c), free(ce), free(k), free(p);
        return false; /* the pool keeps what it had */
    }
    free(pool->tls_ca), free(pool->tls_cert), free(pool->tls_key), free(pool->tls_pin);
    pool->tls_ca = c, pool->tls_cert = ce, pool->tls_key = k, pool->tls_pin = p;
    return true;
}

void transfer_pool_free(transfer_pool *pool) {
    if (!pool) {
        curl_global_cleanup();
        return;
    }
    while (pool->jobs) job_free(pool->jobs);
    if (pool->multi && curl_multi_cleanup(pool->multi) != CURLM_OK) log_warn(LOG_WARN, "transfers: cleanup failed");
    if (pool->timer) event_free(pool->timer);
    peers_clear(pool);
    free(pool->peers);
    free(pool->tls_ca);
    free(pool->tls_cert);
    free(pool->tls_key);
    free(pool->tls_pin);
    codec_free(pool->codec);
    free(pool);
    curl_global_cleanup();
}

/* Gives the request its body in `coding` (plain when out of memory) and the headers that go
 * with it. False when out of memory. */
static bool send_body(job *j, codec_kind coding) {
    size_t len = shared_body_len(j->request_body);
    const char *data = coding == CODEC_IDENTITY ? NULL : shared_body_coded(j->request_body, j->pool->codec, coding, &len);
    if (!data) {
        coding = CODEC_IDENTITY;
        data = shared_body_data(j->request_body);
        len = shared_body_len(j->request_body);
    }
    j->sent = coding;
    /* curl reads POSTFIELDS in place (no COPYPOSTFIELDS): the job's reference keeps the bytes
     * alive until job_free, after the handle has left the multi. */
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, data);
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    /* The headers again, with the Content-Encoding of this coding only. */
    struct curl_slist *headers = NULL;
    bool ok = true;
    for (struct curl_slist *h = j->headers; h && ok; h = h->next) {
        if (strncasecmp(h->data, "Content-Encoding:", 17) == 0) continue;
        struct curl_slist *more = curl_slist_append(headers, h->data);
        if (more) headers = more;
        else ok = false;
    }
    if (ok && coding != CODEC_IDENTITY) {
        struct curl_slist *more = curl_slist_append(headers, coding == CODEC_GZIP ? "Content-Encoding: gzip"
                                                                                   : "Content-Encoding: zstd");
        if (more) headers = more;
        else ok = false;
    }
    if (!ok) {
        curl_slist_free_all(headers);
        return false;
    }
    curl_slist_free_all(j->headers);
    j->headers = headers;
    curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->headers);
    return true;
}

bool transfer_start(transfer_pool *pool, const transfer_request *req, transfer_done_fn done,
                    void *arg) {
    job *j = calloc(1, sizeof *j);
    if (!j) return false;
    j->pool = pool;
    /* Not linked yet: job_free on the failure path leaves the list alone. */
    j->done = done;
    j->arg = arg;
    j->timeout_ms = req->timeout_ms;
    j->started_ms = monotonic_ms();
    j->easy = curl_easy_init();
    if (!j->easy) goto fail;
    CURL *e = j->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->error);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, req->timeout_ms);
    /* Peers name URLs; only plain web requests to them, never file:// or redirects. */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    /* Only when set: unset, curl verifies against the system's CAs (its default). */
    if (pool->tls_ca) curl_easy_setopt(e, CURLOPT_CAINFO, pool->tls_ca);
    if (pool->tls_cert) curl_easy_setopt(e, CURLOPT_SSLCERT, pool->tls_cert);
    if (pool->tls_key) curl_easy_setopt(e, CURLOPT_SSLKEY, pool->tls_key);
    if (pool->tls_pin) curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, pool->tls_pin);
    if (req->direct) curl_easy_setopt(e, CURLOPT_PROXY, ""); /* "": no proxy, whatever the environment says */
    /* Compressed answers, decoded by libcurl before on_body counts them against the limit. */
    if (pool->compression != CODEC_IDENTITY)
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, pool->compression == CODEC_ZSTD ? "zstd, gzip" : "gzip");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    bool has_body = strcmp(req->method, "GET") != 0;
    if (has_body) {
        j->request_body = req->shared ? shared_body_ref(req->shared) : shared_body_copy(req->body, req->body_len);
        if (!j->request_body) goto fail;
        j->headers = curl_slist_append(j->headers, "Content-Type: application/json");
    }
    /* curl would send "Expect: 100-continue" for large bodies and wait for it. */
    j->headers = curl_slist_append(j->headers, "Expect:");
    if (req->authorization) {
        buf h = {0};
        buf_printf(&h, "Authorization: %s", req->authorization);
        if (h.data) j->headers = curl_slist_append(j->headers, h.data);
        buf_free(&h);
    }
    if (req->sender) {
        buf h = {0};
        buf_printf(&h, "%s: %s", ENGINE_SENDER_HEADER, req->sender);
        if (h.data) j->headers = curl_slist_append(j->headers, h.data);
        buf_free(&h);
    }
    if (req->if_match) {
        buf h = {0};
        buf_printf(&h, "If-Match: %s", req->if_match);
        if (h.data) j->headers = curl_slist_append(j->headers, h.data);
        buf_free(&h);
    }
    codec_kind coding = CODEC_IDENTITY;
    if (has_body && req->compressible) {
        if (!(j->url = strdup(req->url))) goto fail;
        if (shared_body_len(j->request_body) >= CODEC_MIN_SIZE) coding = peer_coding_of(pool, req->url);
        if (coding > pool->compression) coding = pool->compression;
    }
    if (has_body ? !send_body(j, coding) : curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers) != CURLE_OK) goto fail;
    if (curl_multi_add_handle(pool->multi, e) != CURLM_OK) goto fail;
    j->next = pool->jobs;
    if (pool->jobs) pool->jobs->prev = j;
    pool->jobs = j;
    return true;
fail:
    job_free(j);
    return false;
}

static bool start_as_transport(void *ctx, const transfer_request *req, transfer_done_fn done, void *arg) {
    return transfer_start(ctx, req, done, arg);
}

engine_transport transfer_transport(transfer_pool *pool) {
    return (engine_transport){.ctx = pool, .start = start_as_transport};
}
