/* config: see config.h. A table lists every variable with its kind and where it goes, so that
 * reading the environment, setting from a host and the documentation all follow one list. */
#include "config.h"

#include "http_server.h"
#include "membership.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { KIND_STRING, KIND_URL, KIND_FILE, KIND_SECONDS, KIND_BOOL, KIND_LISTEN, KIND_LOG, KIND_BYTES, KIND_CODEC, KIND_PROFILE } kind;

typedef struct variable {
    const char *name;
    kind kind;
    size_t offset;
    bool required;
    bool zero_ok; /* for KIND_SECONDS: 0 is a meaningful value */
    /* For KIND_STRING: why an empty value is refused; NULL if it is accepted. An empty value
     * is most often a shell variable that was never set, so it is refused wherever it would
     * otherwise silently mean something else than unset. */
    const char *when_empty;
    /* For KIND_SECONDS: the largest value that means something. Beyond it a value was a
     * mistake, and some overflowed: SHAZBOT_REQUEST_TIMEOUT=1e16 cut every connection at its
     * first byte, SHAZBOT_MAX_CLOCK_SKEW=1e16 skipped every entry 1 ms in the future. */
    double max_seconds;
} variable;

#define AT(field) offsetof(shazbot_settings, field)
#define DAY_SECONDS 86400.0
static const variable variables[] = {
#define NOT_EMPTY "must not be empty"
    {"SHAZBOT_SECRET", KIND_STRING, AT(secret), true, false, NOT_EMPTY, 0},
    {"SHAZBOT_CONTROL_SECRET", KIND_STRING, AT(control_secret), true, false, NOT_EMPTY, 0},
    {"SHAZBOT_BASE_URL", KIND_URL, AT(base_url), true, false, NOT_EMPTY, 0},
    {"SHAZBOT_MASTER_LIST", KIND_STRING, AT(master_list), true, false, NOT_EMPTY, 0},
    {"SHAZBOT_MASTER_LIST_UPDATE", KIND_STRING, AT(master_list_update), true, false, NOT_EMPTY, 0},
    {"SHAZBOT_MASTER_LIST_UPDATE_AUTH", KIND_STRING, AT(master_list_update_auth), true, false, NOT_EMPTY, 0},
    {"SHAZBOT_GOSSIP_INTERVAL", KIND_SECONDS, AT(gossip_interval), false, false, NULL, 30 * DAY_SECONDS},
    {"SHAZBOT_MASTER_ANNOUNCE_MINIMUM", KIND_SECONDS, AT(announce_minimum), false, true, NULL, 30 * DAY_SECONDS},
    {"SHAZBOT_MASTER_ANNOUNCE_INTERVAL", KIND_SECONDS, AT(announce_interval), false, true, NULL, 30 * DAY_SECONDS},
    {"SHAZBOT_MONITOR", KIND_BOOL, AT(monitor), false, false, NULL, 0},
    {"SHAZBOT_UPDATE_MASTER_LIST_ON_SHUTDOWN", KIND_BOOL, AT(update_master_list_on_shutdown), false, false, NULL, 0},
    {"SHAZBOT_LISTEN", KIND_LISTEN, 0, false, false, NULL, 0},
    {"SHAZBOT_POLICY", KIND_STRING, AT(policy_path), false, false,
     "must not be empty (unset it to use the default policy)", 0},
    {"SHAZBOT_LOG_LEVEL", KIND_LOG, AT(log_level), false, false, NULL, 0},
    {"SHAZBOT_MAX_BODY", KIND_BYTES, AT(max_body), false, false, NULL, 0},
    {"SHAZBOT_MAX_CLOCK_SKEW", KIND_SECONDS, AT(max_clock_skew), false, true, NULL, DAY_SECONDS},
    {"SHAZBOT_REQUEST_TIMEOUT", KIND_SECONDS, AT(request_timeout), false, false, NULL, 3600},
    {"SHAZBOT_GOSSIP_TIMEOUT", KIND_SECONDS, AT(gossip_timeout), false, false, NULL, 3600},
    {"SHAZBOT_GOSSIP_RETRY", KIND_SECONDS, AT(gossip_retry), false, false, NULL, 3600},
    {"SHAZBOT_SUSPICION_WINDOW", KIND_SECONDS, AT(suspicion_window), false, true, NULL, DAY_SECONDS},
    {"SHAZBOT_COMPRESSION", KIND_CODEC, AT(compression), false, false, NULL, 0},
    {"SHAZBOT_PROFILE", KIND_PROFILE, AT(profile), false, false, NULL, 0},
    {"SHAZBOT_TLS_CERT", KIND_STRING, AT(tls_cert), false, false, NOT_EMPTY, 0},
    {"SHAZBOT_TLS_KEY", KIND_STRING, AT(tls_key), false, false, NOT_EMPTY, 0},
    {"SHAZBOT_TLS_CLIENT_CA", KIND_STRING, AT(tls_client_ca), false, false, NOT_EMPTY, 0},
    /* TLS of the node's own requests (peers, master list and store). KIND_FILE: read once here,
     * so that a wrong path is a config error at start rather than every transfer failing. */
    {"SHAZBOT_TLS_CA", KIND_FILE, AT(tls_ca), false, false, NOT_EMPTY, 0},
    {"SHAZBOT_TLS_CLIENT_CERT", KIND_FILE, AT(tls_client_cert), false, false, NOT_EMPTY, 0},
    {"SHAZBOT_TLS_CLIENT_KEY", KIND_FILE, AT(tls_client_key), false, false, NOT_EMPTY, 0},
    {"SHAZBOT_TLS_PIN", KIND_STRING, AT(tls_pin), false, false, NOT_EMPTY, 0},
    {"HAPPY_SECRET", KIND_STRING, AT(happy_secret), false, false,
     "must not be empty ('none' opens /happy to everyone; unset, every request gets 401)", 0},
#undef NOT_EMPTY
};
#undef AT
#define VARIABLE_COUNT (sizeof variables / sizeof *variables)
_Static_assert(VARIABLE_COUNT <= 64, "shazbot_settings.explicit_set has a bit per variable");

/* The profiles: what a network asks of the timings, as the values a user would set, so that
 * they pass the same checks (config_set) and a user can read them as settings. Each names the
 * same variables, so that a second profile replaces all of the first one's values.
 *
 * The gossip timeout and the retry are the network's: how long an answer can take when the
 * peer is alive (a 10,000-member state is 100 KB compressed, 830 KB plain), and how long a
 * blip lasts. The suspicion window is the gossip's: how long news of a live peer may take to
 * come round, some intervals. Detection of a dead peer takes about 3 intervals + timeout +
 * retry + timeout (README, "Failures, partitions and a bounded state").
 *
 *   local  one machine (a developer's cluster, a test): a dead node's port refuses at once
 *          and a live one answers in milliseconds; the nodes share the machine's cores, so
 *          no compression (bytes on loopback cost nothing, zstd costs a third more CPU),
 *          and announcements soon, so that a node restarted is in the master list within
 *          seconds.
 *   lan    one data centre: sub-millisecond round trips, rare loss. 2 s rounds (1,000 nodes
 *          agree on a dead one in about 10 rounds), a second for an answer, half a second
 *          before the retry; zstd (a 1,000-member exchange 19 KB instead of 167 KB).
 *   wan    sites far apart: round trips of up to a few hundred ms, loss, bytes that are paid
 *          for. 10 s rounds, PROTOCOL.md's 5 s timeout and 3 s retry, and a window of 3
 *          intervals, since news crosses a lossy link late, and a verdict on a live peer
 *          costs every node a flap. */
typedef struct profile {
    const char *name;
    const char *settings[7][2];
} profile;

static const profile profiles[] = {
    [PROFILE_LOCAL] = {"local",
                       {{"SHAZBOT_GOSSIP_INTERVAL", "1"},
                        {"SHAZBOT_GOSSIP_TIMEOUT", "1"},
                        {"SHAZBOT_GOSSIP_RETRY", "0.5"},
                        {"SHAZBOT_SUSPICION_WINDOW", "1.5"},
                        {"SHAZBOT_MASTER_ANNOUNCE_MINIMUM", "5"},
                        {"SHAZBOT_MASTER_ANNOUNCE_INTERVAL", "10"},
                        {"SHAZBOT_COMPRESSION", "none"}}},
    [PROFILE_LAN] = {"lan",
                     {{"SHAZBOT_GOSSIP_INTERVAL", "2"},
                      {"SHAZBOT_GOSSIP_TIMEOUT", "1"},
                      {"SHAZBOT_GOSSIP_RETRY", "0.5"},
                      {"SHAZBOT_SUSPICION_WINDOW", "3"},
                      {"SHAZBOT_MASTER_ANNOUNCE_MINIMUM", "60"},
                      {"SHAZBOT_MASTER_ANNOUNCE_INTERVAL", "120"},
                      {"SHAZBOT_COMPRESSION", "zstd"}}},
    [PROFILE_WAN] = {"wan",
                     {{"SHAZBOT_GOSSIP_INTERVAL", "10"},
                      {"SHAZBOT_GOSSIP_TIMEOUT", "5"},
                      {"SHAZBOT_GOSSIP_RETRY", "3"},
                      {"SHAZBOT_SUSPICION_WINDOW", "30"},
                      {"SHAZBOT_MASTER_ANNOUNCE_MINIMUM", "300"},
                      {"SHAZBOT_MASTER_ANNOUNCE_INTERVAL", "600"},
                      {"SHAZBOT_COMPRESSION", "zstd"}}},
};
#define PROFILE_COUNT (sizeof profiles / sizeof *profiles)

const char *config_profile_name(profile_kind p) {
    return p > PROFILE_NONE && (size_t)p < PROFILE_COUNT ? profiles[p].name : NULL;
}

/* Kinds held as a malloc'd string. */
static bool is_string(const variable *v) {
    return v->kind == KIND_STRING || v->kind == KIND_URL || v->kind == KIND_FILE;
}

#define FIELD(s, v, type) ((type *)((char *)(s) + (v)->offset))

void config_init(shazbot_settings *s) {
    memset(s, 0, sizeof *s);
    s->gossip_interval = 30;
    s->announce_minimum = 300;
    s->announce_interval = 600;
    s->log_level = LOG_INFO;
    s->max_body = 8u << 20;
    s->max_clock_skew = 300;
    s->request_timeout = 20;
    s->gossip_timeout = s->gossip_retry = 0; /* follow the interval */
    s->suspicion_window = -1;                /* follows the interval */
    s->compression = CODEC_ZSTD;
}

/* The gossip timings follow the interval unless set (PROTOCOL.md's 5 s timeout and 3 s retry
 * are the values of its default 30 s interval): a 1 s cluster then tells a dead peer within a
 * few seconds, and a slow one is not hurried. */
static double clamp(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

double config_gossip_timeout(const shazbot_settings *s) {
    return s->gossip_timeout > 0 ? s->gossip_timeout : clamp(s->gossip_interval, 1, 5);
}

double config_gossip_retry(const shazbot_settings *s) {
    return s->gossip_retry > 0 ? s->gossip_retry : clamp(s->gossip_interval / 2, 0.5, 3);
}

double config_suspicion_window(const shazbot_settings *s) {
    return s->suspicion_window >= 0 ? s->suspicion_window : 1.5 * s->gossip_interval;
}

void config_free(shazbot_settings *s) {
    for (size_t i = 0; i < sizeof variables / sizeof *variables; i++) {
        const variable *v = &variables[i];
        if (is_string(v)) free(*FIELD(s, v, char *));
    }
    free(s->listen_host);
    config_init(s);
}

bool config_copy(shazbot_settings *dst, const shazbot_settings *src) {
    *dst = *src;
    /* First detach every string from src, so that a failure frees only our own copies. */
    for (size_t i = 0; i < sizeof variables / sizeof *variables; i++) {
        const variable *v = &variables[i];
        if (is_string(v)) *FIELD(dst, v, char *) = NULL;
    }
    dst->listen_host = NULL;
    bool ok = true;
    for (size_t i = 0; i < sizeof variables / sizeof *variables; i++) {
        const variable *v = &variables[i];
        if (!is_string(v)) continue;
        const char *value = *FIELD(src, v, char *const);
        if (value && !(*FIELD(dst, v, char *) = strdup(value))) ok = false;
    }
    if (src->listen_host && !(dst->listen_host = strdup(src->listen_host))) ok = false;
    if (!ok) config_free(dst);
    return ok;
}

static const variable *find(const char *name) {
    for (size_t i = 0; i < VARIABLE_COUNT; i++)
        if (strcmp(variables[i].name, name) == 0) return &variables[i];
    return NULL;
}

static uint64_t bit_of(const variable *v) { return (uint64_t)1 << (v - variables); }

bool config_was_set(const shazbot_settings *s, const char *name) {
    const variable *v = find(name);
    return v && (s->explicit_set & bit_of(v));
}

static bool bad(char *err, size_t err_len, const char *name, const char *value, const char *why) {
    snprintf(err, err_len, "%s: \"%s\" %s", name, value, why);
    return false;
}

static bool parse_number(const char *value, double *out) {
    char *end;
    if (!*value || isspace((unsigned char)*value)) return false;
    double d = strtod(value, &end);
    if (*end != '\0' || !isfinite(d)) return false;
    *out = d;
    return true;
}

static bool set_value(shazbot_settings *s, const variable *v, const char *value, char *err, size_t err_len);

/* Gives every variable of the profile that was not set its value. The values are the table's,
 * which test_config checks are accepted; one refused would be a bug of that table, and leaves
 * the settings as they were: the profile is applied to a copy (a shallow one: a profile sets
 * numbers and choices, never a string). */
static bool apply_profile(shazbot_settings *s, const variable *v, const char *value, char *err, size_t err_len) {
    for (size_t p = PROFILE_NONE + 1; p < PROFILE_COUNT; p++) {
        if (strcasecmp(value, profiles[p].name) != 0) continue;
        shazbot_settings t = *s;
        for (size_t i = 0; i < sizeof profiles[p].settings / sizeof *profiles[p].settings; i++) {
            const variable *target = find(profiles[p].settings[i][0]);
            if (!target || is_string(target) || target->kind == KIND_LISTEN)
                return bad(err, err_len, v->name, value, "names a setting a profile cannot set (a bug)");
            if (t.explicit_set & bit_of(target)) continue;
            if (!set_value(&t, target, profiles[p].settings[i][1], err, err_len)) return false;
        }
        t.profile = (profile_kind)p;
        *s = t;
        return true;
    }
    return bad(err, err_len, v->name, value, "is not one of local, lan, wan");
}

bool config_set(shazbot_settings *s, const char *name, const char *value, char *err,
                size_t err_len) {
    const variable *v = find(name);
    if (!v) {
        snprintf(err, err_len, "%s: not a clustershazbot setting", name);
        return false;
    }
    if (!set_value(s, v, value, err, err_len)) return false;
    s->explicit_set |= bit_of(v);
    return true;
}

static bool set_value(shazbot_settings *s, const variable *v, const char *value, char *err, size_t err_len) {
    const char *name = v->name;
    switch (v->kind) {
    case KIND_URL:
        if (!membership_url_valid(value, strlen(value)))
            return bad(err, err_len, name, value, "is not an http(s) URL ending in '/'");
        /* fall through */
    case KIND_FILE:
        if (v->kind == KIND_FILE && *value) {
            FILE *f = fopen(value, "r");
            if (!f) return bad(err, err_len, name, value, "cannot be read (no such file or no permission)");
            fclose(f);
        }
        /* fall through */
    case KIND_STRING:
        if (v->when_empty && !*value) return bad(err, err_len, name, value, v->when_empty);
        free(*FIELD(s, v, char *));
        *FIELD(s, v, char *) = strdup(value);
        return true;
    case KIND_SECONDS: {
        double d;
        if (!parse_number(value, &d) || d < 0 || (d == 0 && !v->zero_ok))
            return bad(err, err_len, name, value,
                       v->zero_ok ? "is not a number of seconds >= 0" : "is not a number of seconds > 0");
        if (d > v->max_seconds) {
            char why[80];
            snprintf(why, sizeof why, "is more seconds than the most this setting takes, %.0f", v->max_seconds);
            return bad(err, err_len, name, value, why);
        }
        *FIELD(s, v, double) = d;
        return true;
    }
    case KIND_BYTES: {
        double d;
        if (!parse_number(value, &d) || d < 1024 || d > (double)(1u << 30) || floor(d) != d)
            return bad(err, err_len, name, value, "is not a whole number of bytes from 1024 to 1073741824");
        *FIELD(s, v, size_t) = (size_t)d;
        return true;
    }
    case KIND_BOOL:
        if (strcasecmp(value, "true") == 0) *FIELD(s, v, bool) = true;
        else if (strcasecmp(value, "false") == 0) *FIELD(s, v, bool) = false;
        else return bad(err, err_len, name, value, "is not true or false");
        return true;
    case KIND_LOG: {
        static const char *levels[] = {"error", "warn", "info", "debug"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(value, levels[i]) == 0) {
                *FIELD(s, v, log_level) = (log_level)i;
                return true;
            }
        }
        return bad(err, err_len, name, value, "is not one of error, warn, info, debug");
    }
    case KIND_CODEC: {
        static const char *names[] = {[CODEC_IDENTITY] = "none", [CODEC_GZIP] = "gzip", [CODEC_ZSTD] = "zstd"};
        for (int i = CODEC_IDENTITY; i <= CODEC_ZSTD; i++) {
            if (strcasecmp(value, names[i]) == 0) {
                *FIELD(s, v, codec_kind) = (codec_kind)i;
                return true;
            }
        }
        return bad(err, err_len, name, value, "is not one of zstd, gzip, none");
    }
    case KIND_PROFILE:
        return apply_profile(s, v, value, err, err_len);
    case KIND_LISTEN: {
        char *host = NULL;
        int port;
        if (!http_parse_address(value, &host, &port))
            return bad(err, err_len, name, value, "is not host:port");
        free(s->listen_host);
        s->listen_host = host;
        s->listen_port = port;
        return true;
    }
    }
    return false;
}

/* The listener's TLS: both files or neither, and an https base URL only with them, as a node
 * that says https but serves plain HTTP would be unreachable to every peer. The files are
 * loaded once here, so that a bad one stops the start with OpenSSL's reason. */
static bool check_tls(const shazbot_settings *s, char *err, size_t err_len) {
    if (!s->tls_cert != !s->tls_key) {
        snprintf(err, err_len, "%s is set but %s is not: TLS needs both the certificate and the key",
                 s->tls_cert ? "SHAZBOT_TLS_CERT" : "SHAZBOT_TLS_KEY", s->tls_cert ? "SHAZBOT_TLS_KEY" : "SHAZBOT_TLS_CERT");
        return false;
    }
    if (s->base_url && strncasecmp(s->base_url, "https://", 8) == 0 && !s->tls_cert) {
        snprintf(err, err_len, "SHAZBOT_BASE_URL: '%s' is https, but SHAZBOT_TLS_CERT and SHAZBOT_TLS_KEY are not set "
                 "(the listener would serve plain HTTP)", s->base_url);
        return false;
    }
    if (s->tls_client_ca && !s->tls_cert) {
        snprintf(err, err_len, "SHAZBOT_TLS_CLIENT_CA is set but SHAZBOT_TLS_CERT and SHAZBOT_TLS_KEY are not: "
                 "client certificates are asked for over TLS only");
        return false;
    }
    if (!s->tls_cert) return true;
    void *ctx = http_tls_context_new(s->tls_cert, s->tls_key, s->tls_client_ca, err, err_len);
    http_tls_context_free(ctx);
    return ctx != NULL;
}

bool config_check(const shazbot_settings *s, char *err, size_t err_len) {
    if (!check_tls(s, err, err_len)) return false;
    for (size_t i = 0; i < sizeof variables / sizeof *variables; i++) {
        const variable *v = &variables[i];
        if (v->required && *FIELD(s, v, char *const) == NULL) {
            snprintf(err, err_len, "%s: missing (required)", v->name);
            return false;
        }
    }
    /* A certificate without its key (or the reverse) would fail every TLS handshake later. */
    if (!s->tls_client_cert != !s->tls_client_key) {
        snprintf(err, err_len, "%s: set without %s (give both or neither)",
                 s->tls_client_cert ? "SHAZBOT_TLS_CLIENT_CERT" : "SHAZBOT_TLS_CLIENT_KEY",
                 s->tls_client_cert ? "SHAZBOT_TLS_CLIENT_KEY" : "SHAZBOT_TLS_CLIENT_CERT");
        return false;
    }
    return true;
}

bool config_from_env(shazbot_settings *s, char *err, size_t err_len) {
    for (size_t i = 0; i < sizeof variables / sizeof *variables; i++) {
        const char *value = getenv(variables[i].name);
        if (value && !config_set(s, variables[i].name, value, err, err_len)) return false;
    }
    return config_check(s, err, err_len);
}

int config_url_port(const char *url) {
    const char *host = strstr(url, "://");
    if (!host) return 0;
    host += 3;
    const char *end = host + strcspn(host, "/");
    /* "user:pw@" is not part of the host, and its ':' is no port. */
    for (const char *c = host; c < end; c++)
        if (*c == '@') host = c + 1;
    const char *colon = NULL;
    /* The last ':' in the authority that is not inside an IPv6 literal. */
    for (const char *c = host; c < end; c++) {
        if (*c == ']') colon = NULL;
        else if (*c == ':') colon = c;
    }
    /* An empty port ("http://a:/") is the scheme's (RFC 3986, 3.2.3). Otherwise digits only:
     * strtol alone read "80x" and " 80" as 80. */
    if (colon && colon + 1 < end) {
        long p = 0;
        for (const char *c = colon + 1; c < end; c++) {
            if (*c < '0' || *c > '9' || p > 65535) return 0;
            p = p * 10 + (*c - '0');
        }
        return p > 0 && p <= 65535 ? (int)p : 0;
    }
    return strncmp(url, "https", 5) == 0 ? 443 : 80;
}
