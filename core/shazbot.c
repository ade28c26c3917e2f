/* shazbot: the public C API (clustershazbot.h): the real node, an engine (engine.c) driven by
 * a libevent loop (evclock.c), libcurl transfers (transfer.c) and, when asked, its own HTTP
 * listener (http.c). Everything protocol-related is the engine's; this file only wires the
 * drivers, the loop and the signals to it. */
#include "clustershazbot.h"
#include "clustershazbot_lua.h"

#include "engine.h"
#include "evclock.h"
#include "http.h"
#include "http_server.h"
#include "log.h"
#include "requests.h"
#include "transfer.h"

#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* With epoll's change list, the add/remove of read and write interest that every HTTP
 * exchange makes is sent to the kernel once per loop iteration instead of once per change. */
static struct event_base *new_event_base(void) {
    struct event_config *cfg = event_config_new();
    if (!cfg) return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

/* Both constructors: the policy comes from a host's Lua state when `host` is given, else from
 * SHAZBOT_POLICY (or the default alone). */
static shazbot *create(const shazbot_settings *s, struct event_base *base, lua_State *host,
                       int hooks_index, char *err, size_t err_len) {
    if (!config_check(s, err, err_len)) return NULL;
    shazbot *node = calloc(1, sizeof *node);
    if (!node) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    policy *pol = host ? policy_new_hosted(host, hooks_index, err, err_len) : policy_new(s->policy_path, err, err_len);
    if (!pol) {
        free(node);
        return NULL;
    }
    node->base = base ? base : new_event_base();
    node->own_base = base == NULL;
    node->clock = node->base ? evclock_new(node->base) : NULL;
    node->pool = node->base ? transfer_pool_new(node->base, s->max_body, s->compression, s->log_level) : NULL;
    const char *path = strchr(strstr(s->base_url, "://") + 3, '/');
    node->listener.base_path = strdup(path);
    if (!node->clock || !node->pool || !node->listener.base_path ||
        !transfer_pool_tls(node->pool, s->tls_ca, s->tls_client_cert, s->tls_client_key, s->tls_pin)) {
        policy_free(pol);
        snprintf(err, err_len, "cannot set up the node (out of memory?)");
        goto fail;
    }
    if (!engine_init(&node->e, s, evclock_clock(node->clock), transfer_transport(node->pool), pol, err, err_len))
        goto fail;
    node->e.events.ring.keep = true; /* for GET clustershazbot/events and shazbot_events */
    return node;
fail:
    shazbot_free(node);
    return NULL;
}

shazbot *shazbot_new(const shazbot_settings *s, struct event_base *base, char *err, size_t err_len) {
    return create(s, base, NULL, 0, err, err_len);
}

shazbot *shazbot_new_lua(const shazbot_settings *s, struct event_base *base, lua_State *L,
                         int hooks_index, char *err, size_t err_len) {
    return create(s, base, L, hooks_index, err, err_len);
}

int shazbot_listen(shazbot *node, const char *host, int port, char *err, size_t err_len) {
    if (!host && !port) {
        host = node->e.cfg.listen_host;
        port = node->e.cfg.listen_port ? node->e.cfg.listen_port : config_url_port(node->e.cfg.base_url);
    }
    return http_listen(node, host, port, err, err_len);
}

int shazbot_start(shazbot *node) { return engine_start(&node->e); }

static void on_stopped(void *arg) {
    shazbot *node = arg;
    if (node->own_base) event_base_loopbreak(node->base);
    if (node->shutdown_done) node->shutdown_done(node->shutdown_arg);
}

int shazbot_shutdown(shazbot *node, void (*done)(void *), void *arg) {
    if (node->e.state != NODE_RUNNING) return -1;
    node->shutdown_done = done;
    node->shutdown_arg = arg;
    return engine_shutdown(&node->e, on_stopped, node);
}

int shazbot_is_stopped(const shazbot *node) { return node->e.state == NODE_STOPPED; }
int shazbot_is_running(const shazbot *node) { return engine_serving(&node->e); }

struct event_base *shazbot_event_base(shazbot *node) { return node->base; }

void shazbot_get_state(const shazbot *node, shazbot_state *out) {
    const engine *e = &node->e;
    *out = (shazbot_state){.master_list_loaded = e->bootstrap.loaded,
                           .leaving = e->state == NODE_STOPPING,
                           .online = membership_count(e->m, MEMBER_ONLINE),
                           .offline = membership_count(e->m, MEMBER_OFFLINE)};
}

static void on_step_timeout(void *arg) { (void)arg; /* only there to end the wait of shazbot_step */ }

int shazbot_step(shazbot *node, double max_wait) {
    if (max_wait <= 0) return event_base_loop(node->base, EVLOOP_NONBLOCK) < 0 ? -1 : 0;
    /* A timer of our own rather than event_base_loopexit, whose pending exit would outlive
     * this call and cut a later loop short. */
    engine_clock *clock = &node->e.clock;
    if (!node->step_timer && !(node->step_timer = clock->timer_new(clock->ctx, on_step_timeout, NULL))) return -1;
    engine_arm(&node->e, node->step_timer, max_wait);
    int rc = event_base_loop(node->base, EVLOOP_ONCE);
    clock->timer_stop(clock->ctx, node->step_timer);
    return rc < 0 ? -1 : 0;
}

static void on_signal(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    shazbot *node = arg;
    log_level level = node->e.cfg.log_level;
    if (node->e.state == NODE_STOPPING) {
        log_warn(level, "second signal %d: stopping at once", (int)fd);
        engine_stop_now(&node->e);
        return;
    }
    log_info(level, "signal %d: leaving the cluster", (int)fd);
    if (shazbot_shutdown(node, NULL, NULL) != 0) event_base_loopbreak(node->base); /* never started */
}

/* SIGHUP: the listener's certificate and key read again (a renewed certificate), for new
 * connections. A bad file is logged and the old ones go on. */
static void on_sighup(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    shazbot *node = arg;
    char err[512];
    int rc = http_server_reload_tls(node->listener.server, err, sizeof err);
    if (rc > 0) log_info(node->e.cfg.log_level, "SIGHUP: TLS certificate and key reloaded");
    else if (rc < 0) log_error(node->e.cfg.log_level, "SIGHUP: TLS not reloaded, the old certificate stays: %s", err);
}

static bool watch_signal(shazbot *node, struct event **ev, int signum) {
    if (!*ev && !(*ev = evsignal_new(node->base, signum, on_signal, node))) return false;
    return evsignal_add(*ev, NULL) == 0;
}

int shazbot_run(shazbot *node, int handle_signals) {
    if (handle_signals) {
        signal(SIGPIPE, SIG_IGN);
        if (!watch_signal(node, &node->sigterm, SIGTERM) || !watch_signal(node, &node->sigint, SIGINT)) {
            log_error(node->e.cfg.log_level, "cannot watch SIGTERM and SIGINT");
            return -1;
        }
        if (node->e.cfg.tls_cert && !node->sighup && (node->sighup = evsignal_new(node->base, SIGHUP, on_sighup, node)))
            evsignal_add(node->sighup, NULL);
    }
    int rc = 0;
    while (node->e.state != NODE_STOPPED && rc == 0) {
        rc = event_base_loop(node->base, 0);
        if (rc == 1) rc = 0; /* nothing left to wait for: only possible before start */
        if (node->e.state == NODE_CREATED) break;
    }
    if (node->sigterm) evsignal_del(node->sigterm);
    if (node->sigint) evsignal_del(node->sigint);
    if (node->sighup) evsignal_del(node->sighup);
    return rc < 0 ? -1 : 0;
}

void shazbot_free(shazbot *node) {
    if (!node) return;
    http_free(node);
    /* The pool first: freeing it cancels the transfers, whose callbacks name the engine. */
    transfer_pool_free(node->pool);
    if (node->step_timer) node->e.clock.timer_free(node->e.clock.ctx, node->step_timer);
    engine_destroy(&node->e);
    evclock_free(node->clock);
    struct event *events[] = {node->sigterm, node->sigint, node->sighup};
    for (size_t i = 0; i < sizeof events / sizeof *events; i++)
        if (events[i]) event_free(events[i]);
    free(node->listener.base_path);
    if (node->own_base && node->base) event_base_free(node->base);
    free(node);
}

/* ---- the request functions ---------------------------------------------------------------- */

static void respond(shazbot *node, int status, buf *b, shazbot_response *out) {
    requests_count(&node->e, status);
    out->status = status;
    out->body = buf_take(b, &out->body_len);
    if (!out->body) {
        out->status = 500;
        out->body = strdup("{\"error\":\"out of memory\"}");
        out->body_len = out->body ? strlen(out->body) : 0;
    }
}

void shazbot_gossip_request(shazbot *node, const char *auth, const char *body, size_t body_len,
                            shazbot_response *out) {
    buf b = {0};
    wire_chunk whole = {body ? body : "", body ? body_len : 0};
    respond(node, requests_gossip(&node->e, auth, NULL, &whole, 1, &b), &b, out);
}

void shazbot_list_request(shazbot *node, const char *auth, shazbot_response *out) {
    buf b = {0};
    respond(node, requests_list(&node->e, auth, &b), &b, out);
}

void shazbot_control_request(shazbot *node, const char *auth, const char *body,
                             size_t body_len, shazbot_response *out) {
    buf b = {0};
    wire_chunk whole = {body ? body : "", body ? body_len : 0};
    respond(node, requests_control(&node->e, auth, &whole, 1, &b), &b, out);
}

void shazbot_happy_request(shazbot *node, const char *auth, int quick, shazbot_response *out) {
    buf b = {0};
    respond(node, requests_happy(&node->e, auth, quick != 0, &b), &b, out);
}

void shazbot_metrics_request(shazbot *node, const char *auth, shazbot_response *out) {
    buf b = {0};
    respond(node, requests_metrics(&node->e, auth, &b), &b, out);
}

void shazbot_on_change(shazbot *node, void (*fn)(const shazbot_event *event, void *arg), void *arg) {
    node->e.events.host_fn = fn;
    node->e.events.host_arg = arg;
}

void shazbot_events(shazbot *node, unsigned long long after, shazbot_response *out) {
    buf b = {0};
    events_write(&node->e.events.ring, after, EVENTS_PAGE, &b);
    out->status = 200;
    out->body = buf_take(&b, &out->body_len);
    if (!out->body) {
        out->status = 500;
        out->body = strdup("{\"error\":\"out of memory\"}");
        out->body_len = out->body ? strlen(out->body) : 0;
    }
}

void shazbot_response_free(shazbot_response *r) {
    if (!r) return;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

/* ---- settings ---------------------------------------------------------------------------- */

shazbot_settings *shazbot_settings_new(void) {
    shazbot_settings *s = malloc(sizeof *s);
    if (s) config_init(s);
    return s;
}

shazbot_settings *shazbot_settings_from_env(char *err, size_t err_len) {
    shazbot_settings *s = shazbot_settings_new();
    if (s && !config_from_env(s, err, err_len)) {
        shazbot_settings_free(s);
        return NULL;
    }
    return s;
}

int shazbot_settings_set(shazbot_settings *s, const char *name, const char *value, char *err,
                         size_t err_len) {
    return config_set(s, name, value, err, err_len) ? 0 : -1;
}

void shazbot_settings_free(shazbot_settings *s) {
    if (!s) return;
    config_free(s);
    free(s);
}
