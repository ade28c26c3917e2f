/* The settings (config.h): any sequence of NAME=VALUE lines given to config_set, the way the
 * environment or a host gives them.
 *
 * Properties, for every line:
 *   - a refusal explains itself: the message names the variable (and the value when it fits)
 *     and the settings are exactly as before, every field compared;
 *   - an accepted value is the value given and lies within the documented bounds (README,
 *     Configuration): seconds > 0 (or >= 0 where 0 means none) and at most 30 days, a day for
 *     the clock skew, an hour for the request timeout; bytes a whole number from 1024 to 1 GiB;
 *     a base URL that membership takes; a listen port up to 65535;
 * and at the end a copy equals the original and config_check names what is missing. */
#include "config.h"
#include "fuzz.h"
#include "membership.h"

#include <math.h>
#include <strings.h>

#define DAY 86400.0

static bool same_string(const char *a, const char *b) { return a && b ? strcmp(a, b) == 0 : a == b; }

static bool same_settings(const shazbot_settings *a, const shazbot_settings *b) {
    return same_string(a->secret, b->secret) && same_string(a->control_secret, b->control_secret) &&
           same_string(a->base_url, b->base_url) && same_string(a->master_list, b->master_list) &&
           same_string(a->master_list_update, b->master_list_update) &&
           same_string(a->master_list_update_auth, b->master_list_update_auth) &&
           a->gossip_interval == b->gossip_interval && a->announce_minimum == b->announce_minimum &&
           a->announce_interval == b->announce_interval && a->monitor == b->monitor &&
           a->update_master_list_on_shutdown == b->update_master_list_on_shutdown &&
           same_string(a->listen_host, b->listen_host) && a->listen_port == b->listen_port &&
           same_string(a->policy_path, b->policy_path) && a->log_level == b->log_level &&
           same_string(a->happy_secret, b->happy_secret) && a->max_body == b->max_body &&
           a->max_clock_skew == b->max_clock_skew && a->request_timeout == b->request_timeout &&
           a->compression == b->compression && a->gossip_timeout == b->gossip_timeout &&
           a->gossip_retry == b->gossip_retry && a->suspicion_window == b->suspicion_window &&
           a->profile == b->profile && a->explicit_set == b->explicit_set;
}

/* Seconds settings: where the value lands, whether 0 is taken, the most taken. */
static const struct {
    const char *name;
    size_t offset;
    bool zero_ok;
    double max;
} seconds[] = {
    {"SHAZBOT_GOSSIP_INTERVAL", offsetof(shazbot_settings, gossip_interval), false, 30 * DAY},
    {"SHAZBOT_MASTER_ANNOUNCE_MINIMUM", offsetof(shazbot_settings, announce_minimum), true, 30 * DAY},
    {"SHAZBOT_MASTER_ANNOUNCE_INTERVAL", offsetof(shazbot_settings, announce_interval), true, 30 * DAY},
    {"SHAZBOT_MAX_CLOCK_SKEW", offsetof(shazbot_settings, max_clock_skew), true, DAY},
    {"SHAZBOT_REQUEST_TIMEOUT", offsetof(shazbot_settings, request_timeout), false, 3600},
    {"SHAZBOT_GOSSIP_TIMEOUT", offsetof(shazbot_settings, gossip_timeout), false, 3600},
    {"SHAZBOT_GOSSIP_RETRY", offsetof(shazbot_settings, gossip_retry), false, 3600},
    {"SHAZBOT_SUSPICION_WINDOW", offsetof(shazbot_settings, suspicion_window), true, DAY},
};

static const struct {
    const char *name;
    size_t offset;
} strings[] = {
    {"SHAZBOT_SECRET", offsetof(shazbot_settings, secret)},
    {"SHAZBOT_CONTROL_SECRET", offsetof(shazbot_settings, control_secret)},
    {"SHAZBOT_BASE_URL", offsetof(shazbot_settings, base_url)},
    {"SHAZBOT_MASTER_LIST", offsetof(shazbot_settings, master_list)},
    {"SHAZBOT_MASTER_LIST_UPDATE", offsetof(shazbot_settings, master_list_update)},
    {"SHAZBOT_MASTER_LIST_UPDATE_AUTH", offsetof(shazbot_settings, master_list_update_auth)},
    {"SHAZBOT_POLICY", offsetof(shazbot_settings, policy_path)},
    {"HAPPY_SECRET", offsetof(shazbot_settings, happy_secret)},
    {"SHAZBOT_TLS_CERT", offsetof(shazbot_settings, tls_cert)},
    {"SHAZBOT_TLS_KEY", offsetof(shazbot_settings, tls_key)},
    {"SHAZBOT_TLS_CLIENT_CA", offsetof(shazbot_settings, tls_client_ca)},
    {"SHAZBOT_TLS_CA", offsetof(shazbot_settings, tls_ca)},
    {"SHAZBOT_TLS_CLIENT_CERT", offsetof(shazbot_settings, tls_client_cert)},
    {"SHAZBOT_TLS_CLIENT_KEY", offsetof(shazbot_settings, tls_client_key)},
    {"SHAZBOT_TLS_PIN", offsetof(shazbot_settings, tls_pin)},
};

#define FIELD(s, off, type) (*(type *)((char *)(s) + (off)))

static void check_accepted(const shazbot_settings *s, const char *name, const char *value) {
    for (size_t i = 0; i < sizeof seconds / sizeof *seconds; i++) {
        if (strcmp(name, seconds[i].name) != 0) continue;
        double d = FIELD(s, seconds[i].offset, double);
        FUZZ_ASSERT(d == strtod(value, NULL), "%s=\"%s\" set to %g", name, value, d);
        FUZZ_ASSERT(isfinite(d) && (seconds[i].zero_ok ? d >= 0 : d > 0) && d <= seconds[i].max,
                    "%s=\"%s\" accepted out of bounds (%g)", name, value, d);
        return;
    }
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++) {
        if (strcmp(name, strings[i].name) != 0) continue;
        const char *got = FIELD(s, strings[i].offset, char *);
        FUZZ_ASSERT(got && strcmp(got, value) == 0, "%s=\"%s\" set to \"%s\"", name, value, got ? got : "(null)");
        /* Every string setting refuses an empty value (an unset shell variable, most often). */
        FUZZ_ASSERT(*value, "%s accepted empty", name);
        if (strcmp(name, "SHAZBOT_BASE_URL") == 0)
            FUZZ_ASSERT(membership_url_valid(value, strlen(value)), "SHAZBOT_BASE_URL=\"%s\": not a URL membership takes", value);
        return;
    }
    if (strcmp(name, "SHAZBOT_MAX_BODY") == 0) {
        FUZZ_ASSERT(s->max_body >= 1024 && s->max_body <= (1u << 30) && (double)s->max_body == strtod(value, NULL),
                    "SHAZBOT_MAX_BODY=\"%s\" set to %zu", value, s->max_body);
    } else if (strcmp(name, "SHAZBOT_MONITOR") == 0 || strcmp(name, "SHAZBOT_UPDATE_MASTER_LIST_ON_SHUTDOWN") == 0) {
        bool got = name[8] == 'M' ? s->monitor : s->update_master_list_on_shutdown;
        FUZZ_ASSERT(strcasecmp(value, got ? "true" : "false") == 0, "%s=\"%s\" set to %d", name, value, got);
    } else if (strcmp(name, "SHAZBOT_LOG_LEVEL") == 0) {
        static const char *levels[] = {"error", "warn", "info", "debug"};
        FUZZ_ASSERT(s->log_level <= LOG_DEBUG && strcasecmp(value, levels[s->log_level]) == 0,
                    "SHAZBOT_LOG_LEVEL=\"%s\" set to %d", value, s->log_level);
    } else if (strcmp(name, "SHAZBOT_COMPRESSION") == 0) {
        static const char *codings[] = {"none", "gzip", "zstd"};
        FUZZ_ASSERT(s->compression <= CODEC_ZSTD && strcasecmp(value, codings[s->compression]) == 0,
                    "SHAZBOT_COMPRESSION=\"%s\" set to %d", value, s->compression);
    } else if (strcmp(name, "SHAZBOT_PROFILE") == 0) {
        /* One of the three, by name; the timings it gave (where nothing was set) in bounds. */
        const char *got = config_profile_name(s->profile);
        FUZZ_ASSERT(got && strcasecmp(value, got) == 0, "SHAZBOT_PROFILE=\"%s\" set to %d", value, s->profile);
        FUZZ_ASSERT(s->gossip_interval > 0 && s->gossip_interval <= 30 * DAY && config_gossip_timeout(s) > 0 &&
                        config_gossip_retry(s) > 0 && config_suspicion_window(s) >= 0,
                    "SHAZBOT_PROFILE=\"%s\": timings out of bounds", value);
    } else if (strcmp(name, "SHAZBOT_LISTEN") == 0) {
        FUZZ_ASSERT(s->listen_port >= 0 && s->listen_port <= 65535, "SHAZBOT_LISTEN=\"%s\": port %d", value, s->listen_port);
        FUZZ_ASSERT(!s->listen_host || (*s->listen_host && strlen(s->listen_host) < strlen(value)),
                    "SHAZBOT_LISTEN=\"%s\": host \"%s\"", value, s->listen_host);
    } else {
        FUZZ_ASSERT(0, "an unknown name accepted: \"%s\"", name);
    }
}

static void set_one(shazbot_settings *s, const char *name, const char *value) {
    shazbot_settings before;
    FUZZ_ASSERT(config_copy(&before, s), "out of memory");
    char err[512];
    memset(err, 'x', sizeof err);
    if (config_set(s, name, value, err, sizeof err)) {
        check_accepted(s, name, value);
    } else {
        FUZZ_ASSERT(memchr(err, '\0', sizeof err) != NULL, "error not terminated");
        FUZZ_ASSERT(strncmp(err, name, strlen(name) < sizeof err - 1 ? strlen(name) : sizeof err - 1) == 0,
                    "the error does not start with the name %s: \"%s\"", name, err);
        if (strlen(name) + strlen(value) < 200 && strstr(err, "not a clustershazbot setting") == NULL) {
            char quoted[256];
            snprintf(quoted, sizeof quoted, "\"%s\"", value);
            FUZZ_ASSERT(strstr(err, quoted) != NULL, "the error does not name the value %s: \"%s\"", quoted, err);
        }
        FUZZ_ASSERT(same_settings(&before, s), "%s=\"%s\" refused but the settings changed", name, value);
    }
    config_free(&before);
}

/* Input: lines of NAME=VALUE (a line without '=' is a name with an empty value). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) abort();
    memcpy(text, data, size);
    text[size] = '\0';
    shazbot_settings s;
    config_init(&s);
    char *line = text;
    while (line) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char *eq = strchr(line, '=');
        const char *value = "";
        if (eq) {
            *eq = '\0';
            value = eq + 1;
        }
        if (*line) set_one(&s, line, value);
        line = next;
    }
    shazbot_settings copy;
    FUZZ_ASSERT(config_copy(&copy, &s), "out of memory");
    FUZZ_ASSERT(same_settings(&copy, &s), "a copy differs");
    char err[512];
    if (!config_check(&s, err, sizeof err))
        /* A required variable missing, or the TLS settings not fitting together (an https base
         * URL without a certificate, half a pair): each named. */
        FUZZ_ASSERT(strncmp(err, "SHAZBOT_", 8) == 0 && (strstr(err, "missing (required)") || strstr(err, "TLS")),
                    "config_check: \"%s\"", err);
    config_free(&copy);
    config_free(&s);
    free(text);
    return 0;
}
