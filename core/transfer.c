/* transfer: see transfer.h.
 *
 * libcurl tells us, through CURLMOPT_SOCKETFUNCTION, which sockets it wants watched and, via
 * CURLMOPT_TIMERFUNCTION, when it next needs a kick; we map those onto libevent events and
 * report readiness back with curl_multi_socket_action. Finished transfers are collected after
 * every action. */
#include "transfer.h"

#include "buf.h"
#include "log.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct transfer_pool {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    size_t max_response;
    struct job *jobs; /* under way, so that freeing the pool can cancel them */
};

typedef struct job {
    transfer_pool *pool;
    struct job *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    shared_body *request_body; /* referenced (a fan-out's, shared) or our own copy */
    buf response;
    char *etag;
    bool too_large;
    transfer_done_fn done;
    void *arg;
    char error[CURL_ERROR_SIZE];
} job;

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
    free(j->etag);
    buf_free(&j->response);
    free(j);
}

/* One per socket curl asked us to watch. */
typedef struct watch {
    struct event *ev;
} watch;

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
        } else {
            r.error = j->too_large ? "answer larger than the body limit"
                      : j->error[0] ? j->error
                                    : curl_easy_strerror(code);
        }
        r.body = j->response.data ? j->response.data : "";
        r.body_len = j->response.len;
        r.etag = j->etag;
        r.too_large = j->too_large;
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

static size_t on_header(char *data, size_t size, size_t n, void *arg) {
    job *j = arg;
    size_t len = size * n;
    if (len > 5 && strncasecmp(data, "ETag:", 5) == 0) {
        const char *v = data + 5;
        const char *end = data + len;
        while (v < end && (*v == ' ' || *v == '\t')) v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
        free(j->etag);
        j->etag = strndup(v, (size_t)(end - v));
    }
    return len;
}

transfer_pool *transfer_pool_new(struct event_base *base, size_t max_response) {
    /* curl_global_init is reference counted and not thread-safe before 7.84; hosts call us
     * from their main thread. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
    transfer_pool *pool = calloc(1, sizeof *pool);
    if (!pool) goto fail;
    pool->base = base;
    pool->max_response = max_response;
    pool->multi = curl_multi_init();
    pool->timer = evtimer_new(base, on_timeout, pool);
    if (!pool->multi || !pool->timer) goto fail;
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

void transfer_pool_free(transfer_pool *pool) {
    if (!pool) {
        curl_global_cleanup();
        return;
    }
    while (pool->jobs) job_free(pool->jobs);
    if (pool->multi && curl_multi_cleanup(pool->multi) != CURLM_OK) log_warn(LOG_WARN, "transfers: cleanup failed");
    if (pool->timer) event_free(pool->timer);
    free(pool);
    curl_global_cleanup();
}

bool transfer_start(transfer_pool *pool, const transfer_request *req, transfer_done_fn done,
                    void *arg) {
    job *j = calloc(1, sizeof *j);
    if (!j) return false;
    j->pool = pool;
    /* Not linked yet: job_free on the failure path leaves the list alone. */
    j->done = done;
    j->arg = arg;
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
    if (req->direct) curl_easy_setopt(e, CURLOPT_PROXY, ""); /* "": no proxy, whatever the environment says */
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    if (strcmp(req->method, "GET") != 0) {
        /* curl reads POSTFIELDS in place (no COPYPOSTFIELDS): the job's reference keeps the
         * bytes alive until job_free, after the handle has left the multi. */
        j->request_body = req->shared ? shared_body_ref(req->shared) : shared_body_copy(req->body, req->body_len);
        if (!j->request_body) goto fail;
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, shared_body_data(j->request_body));
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)shared_body_len(j->request_body));
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
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
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
