/* config: environment variables (or the same names given one by one by a host) -> validated
 * settings. One setter serves both ways in, so a value is checked the same wherever it comes
 * from, and every error names the variable and the value. */
#ifndef SHAZBOT_CONFIG_H
#define SHAZBOT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level;

/* The content codings of HTTP that the node knows (codec.c), in the order of preference of
 * the ones it writes: identity (none), gzip, zstd. deflate is only read. */
typedef enum { CODEC_IDENTITY = 0, CODEC_GZIP, CODEC_ZSTD, CODEC_DEFLATE } codec_kind;

/* SHAZBOT_PROFILE: one choice of network instead of six numbers (config.c's profiles). */
typedef enum { PROFILE_NONE = 0, PROFILE_LOCAL, PROFILE_LAN, PROFILE_WAN } profile_kind;

typedef struct shazbot_settings {
    char *secret;
    char *control_secret;
    char *base_url;
    char *master_list;
    char *master_list_update;
    char *master_list_update_auth;
    double gossip_interval;   /* seconds */
    double announce_minimum;  /* seconds */
    double announce_interval; /* seconds */
    bool monitor;
    bool update_master_list_on_shutdown;
    char *listen_host; /* NULL: every interface */
    int listen_port;   /* 0: the port of base_url */
    char *policy_path;
    log_level log_level;
    char *tls_cert; /* PEM path; with tls_key, the listener serves TLS */
    char *tls_key;  /* PEM path of the private key of tls_cert */
    char *tls_client_ca; /* PEM path: NULL, no client certificate asked; else one signed by it required */
    /* NULL: unset. A CA PEM file for verifying the servers the node talks to (else the
     * system's CAs); a client certificate and key (both or neither, config_check); a pinned
     * public key in curl's CURLOPT_PINNEDPUBLICKEY form (sha256//... or a file). */
    char *tls_ca;
    char *tls_client_cert;
    char *tls_client_key;
    char *tls_pin;
    char *happy_secret; /* NULL: every /happy request gets 401; "none": open */
    size_t max_body;      /* bytes */
    double max_clock_skew; /* seconds a lastUpdate may lie in the future */
    double request_timeout; /* seconds a request may take from its first byte (http_guard.h) */
    /* Unset (0, and -1 for the window): they follow the interval; read them through the
     * config_gossip_* functions below. */
    double gossip_timeout;   /* seconds a gossip POST may take */
    double gossip_retry;     /* seconds before the one retry after a failure */
    double suspicion_window; /* a peer heard of this recently is not moved offline (engine.c) */
    /* SHAZBOT_COMPRESSION: the best coding this node compresses its gossip and answers with
     * (CODEC_ZSTD, CODEC_GZIP or CODEC_IDENTITY for none). What it is sent it reads whatever
     * this says. */
    codec_kind compression;
    /* SHAZBOT_PROFILE: the values it gave are in the fields above, where nothing set them. */
    profile_kind profile;
    /* Bit i: the variable at index i of config.c's table was set (config_set), so a profile,
     * whenever it comes, leaves it as it is: explicit settings win, in any order. */
    uint64_t explicit_set;
} shazbot_settings;

/* Defaults for everything optional; required values NULL. */
void config_init(shazbot_settings *s);
void config_free(shazbot_settings *s);

/* A deep copy into `dst` (which holds nothing); false when out of memory, `dst` then empty. */
bool config_copy(shazbot_settings *dst, const shazbot_settings *src);

/* Sets one variable by its environment name (SHAZBOT_GOSSIP_INTERVAL, HAPPY_SECRET, ...).
 * Returns false and explains in `err` when the name is unknown or the value malformed; the
 * settings are then unchanged. */
bool config_set(shazbot_settings *s, const char *name, const char *value, char *err,
                size_t err_len);

/* Reads every known variable from the environment, then checks the required ones. */
bool config_from_env(shazbot_settings *s, char *err, size_t err_len);

/* Checks that every required variable is set. */
bool config_check(const shazbot_settings *s, char *err, size_t err_len);

/* The gossip timings in effect: set, or derived from the interval. */
double config_gossip_timeout(const shazbot_settings *s);
double config_gossip_retry(const shazbot_settings *s);
double config_suspicion_window(const shazbot_settings *s);

/* Whether the variable `name` was given a value (by config_set, not by a profile). */
bool config_was_set(const shazbot_settings *s, const char *name);

/* "local", "lan", "wan", or NULL for PROFILE_NONE. */
const char *config_profile_name(profile_kind p);

/* Port of an http(s) URL (explicit, or 80/443). Returns 0 if it cannot be read. */
int config_url_port(const char *url);

#endif
