/* The subcommands that talk to a running node: members, control, health.
 *
 * Blocking libcurl requests are fine here: a command line program does one exchange and
 * exits. Answers are read with yajl (the tree API: the documents are small). */
#include "cli.h"
#include "common.h"
#include "members_table.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

#define CLIENT_TIMEOUT_MS 10000L
/* A node's whole list at 10,000 records is about 1 MB; anything far larger is not a node. */
#define CLIENT_MAX_ANSWER (64u << 20)

static const char *const members_usage =
    "usage: clustershazbot members [--url URL] [--control-secret S] [--json]\n"
    "                              [--status online|offline] [--match GLOB]\n"
    "\n"
    "Prints the node's view of the cluster: base URL, status, monitor, age of the last\n"
    "update, and a summary line. --json prints the list as the node sends it.\n"
    "--status shows the members of one status only; --match those whose base URL matches\n"
    "a shell glob ('http://10.0.*'), the summary counting what is shown.\n"
    "Defaults: --url from SHAZBOT_BASE_URL, --control-secret from SHAZBOT_CONTROL_SECRET\n"
    "(without it only online members are shown).\n"
    "Exit status: 0 success, 1 the node could not be asked or refused the secret, 2 bad usage.\n";

static const char *const control_usage =
    "usage: clustershazbot control online|offline [--url URL] [--control-secret S]\n"
    "\n"
    "Takes the node out of the cluster (offline) or back in (online).\n"
    "Defaults: --url from SHAZBOT_BASE_URL, --control-secret from SHAZBOT_CONTROL_SECRET.\n"
    "Exit status: 0 success, 1 the node refused or could not be reached, 2 bad usage.\n";

static const char *const health_usage =
    "usage: clustershazbot health [--url URL] [--quick]\n"
    "\n"
    "Prints the node's /happy payload (with --quick, /happy/quick), indented.\n"
    "Default: --url from SHAZBOT_BASE_URL; the Authorization header is HAPPY_SECRET when it is\n"
    "set and not \"none\".\n"
    "Exit status: 0 success, 1 the node refused or could not be reached, 2 bad usage.\n";

static const char *const watch_usage =
    "usage: clustershazbot watch [--url URL] [--control-secret S] [--json] [--after N]\n"
    "                            [--count N] [--interval SECONDS]\n"
    "\n"
    "Streams the node's change events (join, alive, failed, left, offline, purged, self), one\n"
    "line each, as the node saw them: time, kind, base URL, status before -> after. --json\n"
    "prints each event as the node gives it, one JSON object a line. It asks the node's\n"
    "GET clustershazbot/events for the events after the last one seen, which the node holds\n"
    "until one comes (5 s at most; a node that answers at once is asked every --interval\n"
    "seconds, default 0.25): from --after N (default 0: every event the node still holds,\n"
    "the last 4096). Events the node no longer held when asked are reported on stderr as missed.\n"
    "--count N exits after N events. Defaults: --url from SHAZBOT_BASE_URL, --control-secret\n"
    "from SHAZBOT_CONTROL_SECRET (required: events name offline members).\n"
    "Exit status: 0 after --count events, 1 the node could not be asked or refused the\n"
    "secret, 2 bad usage.\n";

/* What a subcommand accepts besides --help. */
enum {
    TAKES_URL = 1 << 0,
    TAKES_CONTROL_SECRET = 1 << 1,
    TAKES_JSON = 1 << 2,
    TAKES_QUICK = 1 << 3,
    TAKES_ACTION = 1 << 4, /* one word that is not an option: control's online|offline */
    TAKES_FILTER = 1 << 5, /* members' --status and --match */
};

typedef struct options {
    const char *url, *secret, *action;
    bool json, quick;
    members_filter filter;
} options;

/* Parses argv[1..] into `o`; returns false (after printing why and the usage) on bad usage. */
static bool parse_options(int argc, char **argv, unsigned accepted, const char *usage, options *o) {
    o->url = getenv("SHAZBOT_BASE_URL");
    o->secret = getenv("SHAZBOT_CONTROL_SECRET");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **value = (accepted & TAKES_URL) && strcmp(a, "--url") == 0 ? &o->url
                             : (accepted & TAKES_CONTROL_SECRET) && strcmp(a, "--control-secret") == 0 ? &o->secret
                             : (accepted & TAKES_FILTER) && strcmp(a, "--status") == 0 ? &o->filter.status
                             : (accepted & TAKES_FILTER) && strcmp(a, "--match") == 0  ? &o->filter.pattern
                                                                                        : NULL;
        if (value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "clustershazbot %s: missing value after %s\n%s", argv[0], a, usage);
                return false;
            }
            *value = argv[++i];
        } else if ((accepted & TAKES_JSON) && strcmp(a, "--json") == 0) {
            o->json = true;
        } else if ((accepted & TAKES_QUICK) && strcmp(a, "--quick") == 0) {
            o->quick = true;
        } else if ((accepted & TAKES_ACTION) && !o->action && a[0] != '-') {
            o->action = a;
        } else {
            fprintf(stderr, "clustershazbot %s: unexpected argument '%s'\n%s", argv[0], a, usage);
            return false;
        }
    }
    if (o->filter.status && strcmp(o->filter.status, "online") != 0 && strcmp(o->filter.status, "offline") != 0) {
        fprintf(stderr, "clustershazbot %s: --status must be online or offline, not '%s'\n%s", argv[0], o->filter.status,
                usage);
        return false;
    }
    if (!o->url || !*o->url) {
        fprintf(stderr, "clustershazbot %s: no node to ask: give --url or set SHAZBOT_BASE_URL\n%s", argv[0], usage);
        return false;
    }
    return true;
}

/* An answer's body, gathered by the C library's own growing buffer (open_memstream). */
typedef struct answer {
    char *data; /* NUL-terminated; NULL when nothing could be gathered */
    size_t len;
} answer;

typedef struct collector {
    FILE *stream;
    size_t len;
} collector;

static size_t collect(char *data, size_t size, size_t n, void *arg) {
    collector *c = arg;
    if (c->len + size * n > CLIENT_MAX_ANSWER) return 0; /* curl stops: "write error" */
    if (fwrite(data, 1, size * n, c->stream) != size * n) return 0;
    c->len += size * n;
    return size * n;
}

/* One request; returns the HTTP status, or 0 (after printing why) when there was no answer. */
static long exchange(const char *method, const char *url, const char *auth, const char *body,
                     answer *out) {
    *out = (answer){0};
    CURL *curl = curl_easy_init();
    if (!curl) {
        fprintf(stderr, "clustershazbot: cannot reach %s: libcurl failed to start\n", url);
        return 0;
    }
    collector c = {open_memstream(&out->data, &out->len), 0};
    static const char auth_name[] = "Authorization: ";
    size_t auth_size = auth ? sizeof auth_name + strlen(auth) : 0;
    char *auth_header = auth ? malloc(auth_size) : NULL;
    if (!c.stream || (auth && !auth_header)) {
        fprintf(stderr, "clustershazbot: cannot reach %s: out of memory\n", url);
        if (c.stream) fclose(c.stream);
        free(out->data);
        *out = (answer){0};
        free(auth_header);
        curl_easy_cleanup(curl);
        return 0;
    }
    char error[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (auth) {
        snprintf(auth_header, auth_size, "%s%s", auth_name, auth);
        headers = curl_slist_append(headers, auth_header);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, CLIENT_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &c);
    if (body) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    /* The node's TLS settings, so that the client trusts and shows itself as the node does;
     * unset (or empty), curl's defaults. A bad file shows as curl's reason below. */
    static const struct { const char *name; CURLoption opt; } tls[] = {
        {"SHAZBOT_TLS_CA", CURLOPT_CAINFO},
        {"SHAZBOT_TLS_CLIENT_CERT", CURLOPT_SSLCERT},
        {"SHAZBOT_TLS_CLIENT_KEY", CURLOPT_SSLKEY},
        {"SHAZBOT_TLS_PIN", CURLOPT_PINNEDPUBLICKEY},
    };
    for (size_t i = 0; i < sizeof tls / sizeof *tls; i++) {
        const char *v = getenv(tls[i].name);
        if (v && *v) curl_easy_setopt(curl, tls[i].opt, v);
    }
    long status = 0;
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    else fprintf(stderr, "clustershazbot: cannot reach %s: %s\n", url, error[0] ? error : curl_easy_strerror(rc));
    fclose(c.stream); /* sets out->data and out->len */
    curl_slist_free_all(headers);
    free(auth_header);
    curl_easy_cleanup(curl);
    return status;
}

/* An endpoint URL: the node's base URL plus `path`, or, for /happy, the root of its host. NULL
 * when out of memory. */
static char *endpoint(const char *base, const char *path, bool at_root) {
    const char *host = strstr(base, "://");
    size_t keep = strlen(base);
    if (at_root && host) keep = (size_t)(host + 3 - base) + strcspn(host + 3, "/");
    const char *slash = keep == 0 || base[keep - 1] != '/' ? "/" : "";
    size_t size = keep + strlen(slash) + strlen(path) + 1;
    char *url = malloc(size);
    if (url) snprintf(url, size, "%.*s%s%s", (int)keep, base, slash, path);
    return url;
}

/* Runs one exchange and checks the answer; returns the parsed JSON or NULL (message printed).
 * `secret_source` names where the secret sent came from, for the message on a 401. */
static yajl_val ask(const char *method, const char *url, const char *auth, const char *secret_source,
                    const char *body, answer *raw) {
    if (!url) {
        fprintf(stderr, "clustershazbot: out of memory\n");
        return NULL;
    }
    long status = exchange(method, url, auth, body, raw);
    if (status == 0) return NULL;
    char why[256];
    yajl_val doc = raw->data ? yajl_tree_parse(raw->data, why, sizeof why) : NULL;
    if (status == 200 && doc) return doc;
    const char *path[] = {"error", NULL};
    yajl_val error = doc ? yajl_tree_get(doc, path, yajl_t_string) : NULL;
    const char *detail = error ? YAJL_GET_STRING(error) : "";
    if (status == 401)
        fprintf(stderr, "clustershazbot: %s answered 401: the secret is %s (%s)%s%s\n", url,
                auth ? "wrong" : "missing", secret_source, error ? ": " : "", detail);
    else if (status == 200)
        fprintf(stderr, "clustershazbot: %s did not answer JSON\n", url);
    else
        fprintf(stderr, "clustershazbot: %s answered %ld%s%s\n", url, status, error ? ": " : "", detail);
    yajl_tree_free(doc);
    return NULL;
}

/* ---- members --------------------------------------------------------------------------- */

int cli_members(int argc, char **argv) {
    if (cli_wants_help(argc, argv, members_usage)) return 0;
    options o = {0};
    if (!parse_options(argc, argv, TAKES_URL | TAKES_CONTROL_SECRET | TAKES_JSON | TAKES_FILTER, members_usage, &o))
        return 2;
    bool filtered = o.filter.status || o.filter.pattern;
    char *url = endpoint(o.url, "clustershazbot/list", false);
    answer raw = {0};
    yajl_val doc = ask("GET", url, o.secret, "--control-secret or SHAZBOT_CONTROL_SECRET", NULL, &raw);
    int rc = 1;
    if (!doc) {
        /* said why */
    } else if (!members_table_list(doc, "online")) {
        fprintf(stderr, "clustershazbot members: %s did not answer a members list: %.200s\n", url, raw.data);
    } else if (o.secret && !members_table_list(doc, "offline")) {
        /* The node answers the public part of its list to anyone (the protocol has no 401
         * here): a refused secret shows only as a missing offline list. */
        fprintf(stderr, "clustershazbot members: %s did not accept the control secret: it is wrong "
                        "(--control-secret or SHAZBOT_CONTROL_SECRET)\n", url);
    } else if (o.json && !filtered) {
        printf("%s\n", raw.data);
        rc = 0;
    } else if (o.filter.status && strcmp(o.filter.status, "offline") == 0 && !o.secret) {
        fprintf(stderr, "clustershazbot members: offline members are shown only with the control secret "
                        "(--control-secret or SHAZBOT_CONTROL_SECRET)\n");
        rc = 2;
    } else {
        members_table_filter(doc, &o.filter);
        if (o.json) {
            rc = members_table_write_json(stdout, doc) ? 0 : 1;
            goto done;
        }
        if (!o.secret) fprintf(stderr, "clustershazbot members: no control secret given: offline members are not shown\n");
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        rc = members_table_print(stdout, doc, (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000) ? 0 : 1;
    }
done:
    free(url);
    yajl_tree_free(doc);
    free(raw.data);
    return rc;
}

/* ---- control ----------------------------------------------------------------------------- */

int cli_control(int argc, char **argv) {
    if (cli_wants_help(argc, argv, control_usage)) return 0;
    options o = {0};
    if (!parse_options(argc, argv, TAKES_URL | TAKES_CONTROL_SECRET | TAKES_ACTION, control_usage, &o)) return 2;
    if (!o.action || (strcmp(o.action, "online") != 0 && strcmp(o.action, "offline") != 0)) {
        fprintf(stderr, "clustershazbot control: say online or offline\n%s", control_usage);
        return 2;
    }
    char *url = endpoint(o.url, "clustershazbot/control", false);
    const char *body = strcmp(o.action, "online") == 0 ? "{\"message\":\"control\",\"online\":true}"
                                                       : "{\"message\":\"control\",\"online\":false}";
    answer raw = {0};
    yajl_val doc = ask("POST", url, o.secret, "--control-secret or SHAZBOT_CONTROL_SECRET", body, &raw);
    if (doc) printf("%s is now %s\n", o.url, o.action);
    free(url);
    yajl_tree_free(doc);
    free(raw.data);
    return doc ? 0 : 1;
}

/* ---- health -------------------------------------------------------------------------------
 * The payload is re-generated, indented, by feeding yajl's parser straight into its
 * generator. */

static int re_null(void *g) { return yajl_gen_null(g) == yajl_gen_status_ok; }
static int re_boolean(void *g, int v) { return yajl_gen_bool(g, v) == yajl_gen_status_ok; }
static int re_number(void *g, const char *s, size_t l) { return yajl_gen_number(g, s, l) == yajl_gen_status_ok; }
static int re_string(void *g, const unsigned char *s, size_t l) { return yajl_gen_string(g, s, l) == yajl_gen_status_ok; }
static int re_start_map(void *g) { return yajl_gen_map_open(g) == yajl_gen_status_ok; }
static int re_end_map(void *g) { return yajl_gen_map_close(g) == yajl_gen_status_ok; }
static int re_start_array(void *g) { return yajl_gen_array_open(g) == yajl_gen_status_ok; }
static int re_end_array(void *g) { return yajl_gen_array_close(g) == yajl_gen_status_ok; }

static bool print_indented(const char *json, size_t len) {
    static const yajl_callbacks reformat = {re_null, re_boolean, NULL, NULL, re_number, re_string,
                                            re_start_map, re_string, re_end_map, re_start_array, re_end_array};
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_config(g, yajl_gen_beautify, 1);
    yajl_gen_config(g, yajl_gen_indent_string, "  ");
    yajl_handle h = yajl_alloc(&reformat, NULL, g);
    bool ok = yajl_parse(h, (const unsigned char *)json, len) == yajl_status_ok &&
              yajl_complete_parse(h) == yajl_status_ok;
    const unsigned char *out;
    size_t out_len;
    if (ok && yajl_gen_get_buf(g, &out, &out_len) == yajl_gen_status_ok) fwrite(out, 1, out_len, stdout);
    yajl_free(h);
    yajl_gen_free(g);
    return ok;
}

int cli_health(int argc, char **argv) {
    if (cli_wants_help(argc, argv, health_usage)) return 0;
    options o = {0};
    if (!parse_options(argc, argv, TAKES_URL | TAKES_QUICK, health_usage, &o)) return 2;
    const char *secret = getenv("HAPPY_SECRET");
    if (secret && strcmp(secret, "none") == 0) secret = NULL;
    char *url = endpoint(o.url, o.quick ? "happy/quick" : "happy", true);
    answer raw = {0};
    yajl_val doc = ask("GET", url, secret, "HAPPY_SECRET", NULL, &raw);
    bool ok = doc && print_indented(raw.data, raw.len);
    free(url);
    yajl_tree_free(doc);
    free(raw.data);
    return ok ? 0 : 1;
}

/* ---- watch --------------------------------------------------------------------------------
 * Polling with sequence numbers rather than a connection held open: each answer says which
 * event to ask after next, so a watcher that polls late loses nothing the node still holds,
 * and is told how many it lost past that. */

/* Writes a parsed value back as compact JSON (the events as the node wrote them). */
static void gen_value(yajl_gen g, yajl_val v) {
    if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            yajl_gen_string(g, (const unsigned char *)v->u.object.keys[i], strlen(v->u.object.keys[i]));
            gen_value(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
    } else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++) gen_value(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
    } else if (YAJL_IS_STRING(v)) {
        yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string));
    } else if (YAJL_IS_NUMBER(v)) {
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        yajl_gen_bool(g, YAJL_IS_TRUE(v));
    } else {
        yajl_gen_null(g);
    }
}

static const char *field_string(yajl_val v, const char *name) {
    const char *path[] = {name, NULL};
    yajl_val s = yajl_tree_get(v, path, yajl_t_string);
    return s ? YAJL_GET_STRING(s) : NULL;
}

static bool field_integer(yajl_val v, const char *name, long long *out) {
    const char *path[] = {name, NULL};
    yajl_val n = yajl_tree_get(v, path, yajl_t_number);
    if (!n || !YAJL_IS_INTEGER(n)) return false;
    *out = YAJL_GET_INTEGER(n);
    return true;
}

static const char *side_status(yajl_val event, const char *side) {
    const char *path[] = {side, "status", NULL};
    yajl_val s = yajl_tree_get(event, path, yajl_t_string);
    return s ? YAJL_GET_STRING(s) : "-";
}

/* One line: 2026-12-02T15:50:01.123Z  join     http://10.0.0.7:3000/  - -> online */
static void print_event_line(yajl_val event) {
    long long time_ms = 0;
    field_integer(event, "time", &time_ms);
    time_t seconds = (time_t)(time_ms / 1000);
    struct tm tm;
    char when[32] = "?";
    if (gmtime_r(&seconds, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    const char *kind = field_string(event, "kind"), *url = field_string(event, "baseUrl");
    printf("%s.%03lldZ  %-8s %s  %s -> %s\n", when, time_ms % 1000, kind ? kind : "?", url ? url : "?",
           side_status(event, "before"), side_status(event, "after"));
}

static bool print_event_json(yajl_val event) {
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g) return false;
    gen_value(g, event);
    const unsigned char *out;
    size_t len;
    bool ok = yajl_gen_get_buf(g, &out, &len) == yajl_gen_status_ok;
    if (ok) printf("%.*s\n", (int)len, (const char *)out);
    yajl_gen_free(g);
    return ok;
}

static bool parse_count(const char *text, unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-') return false;
    *out = v;
    return true;
}

int cli_watch(int argc, char **argv) {
    if (cli_wants_help(argc, argv, watch_usage)) return 0;
    /* --after, --count and --interval are watch's own; the rest are parse_options'. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) return 1;
    int n = 0;
    rest[n++] = argv[0];
    unsigned long long after = 0, count = 0;
    double interval = 0.25;
    for (int i = 1; i < argc; i++) {
        bool ours = strcmp(argv[i], "--after") == 0 || strcmp(argv[i], "--count") == 0 ||
                    strcmp(argv[i], "--interval") == 0;
        if (!ours) {
            rest[n++] = argv[i];
            continue;
        }
        char *end = NULL;
        bool ok = i + 1 < argc;
        if (ok && argv[i][2] == 'a') ok = parse_count(argv[i + 1], &after);
        else if (ok && argv[i][2] == 'c') ok = parse_count(argv[i + 1], &count) && count > 0;
        else if (ok) {
            interval = strtod(argv[i + 1], &end);
            ok = end != argv[i + 1] && !*end && interval >= 0.01 && interval <= 3600;
        }
        if (!ok) {
            fprintf(stderr, "clustershazbot watch: %s needs %s\n%s", argv[i],
                    argv[i][2] == 'i' ? "a number of seconds between 0.01 and 3600"
                    : argv[i][2] == 'c' ? "a whole number above 0" : "a whole number",
                    watch_usage);
            free(rest);
            return 2;
        }
        i++;
    }
    options o = {0};
    bool usable = parse_options(n, rest, TAKES_URL | TAKES_CONTROL_SECRET | TAKES_JSON, watch_usage, &o);
    free(rest);
    if (!usable) return 2;
    if (!o.secret) {
        fprintf(stderr, "clustershazbot watch: no control secret: give --control-secret or set SHAZBOT_CONTROL_SECRET\n%s",
                watch_usage);
        return 2;
    }
    char *base = endpoint(o.url, "clustershazbot/events", false);
    if (!base) return 1;
    unsigned long long seen = 0;
    int rc = 1;
    for (;;) {
        char url[4096];
        /* Held by the node until an event comes, for at most 5 s (a long poll). */
        snprintf(url, sizeof url, "%s?after=%llu&wait=5", base, after);
        struct timespec asked;
        clock_gettime(CLOCK_MONOTONIC, &asked);
        answer raw = {0};
        yajl_val doc = ask("GET", url, o.secret, "--control-secret or SHAZBOT_CONTROL_SECRET", NULL, &raw);
        const char *events_path[] = {"events", NULL};
        yajl_val events = doc ? yajl_tree_get(doc, events_path, yajl_t_array) : NULL;
        long long next, missed;
        if (doc && (!events || !field_integer(doc, "next", &next) || !field_integer(doc, "missed", &missed))) {
            fprintf(stderr, "clustershazbot watch: %s did not answer events: %.200s\n", url, raw.data);
        }
        bool ok = events && field_integer(doc, "next", &next) && field_integer(doc, "missed", &missed);
        if (ok && missed > 0)
            fprintf(stderr, "clustershazbot watch: %lld events missed (the node keeps the last 4096)\n", missed);
        for (size_t i = 0; ok && i < events->u.array.len && (!count || seen < count); i++, seen++) {
            if (o.json) ok = print_event_json(events->u.array.values[i]);
            else print_event_line(events->u.array.values[i]);
        }
        if (ok) {
            fflush(stdout);
            if (next < 0 || (unsigned long long)next < after)
                fprintf(stderr, "clustershazbot watch: the node started again: its events from the first\n");
            after = (unsigned long long)next;
        }
        size_t got = events ? events->u.array.len : 0;
        yajl_tree_free(doc);
        free(raw.data);
        if (!ok) break;
        if (count && seen >= count) {
            rc = 0;
            break;
        }
        if (got > 0) continue; /* the next at once: the node holds the request until there is one */
        /* Nothing, and sooner than asked: a node that does not hold requests, which is
         * asked again after --interval. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double took = (double)(now.tv_sec - asked.tv_sec) + (double)(now.tv_nsec - asked.tv_nsec) / 1e9;
        if (took < interval) {
            double left = interval - took;
            struct timespec pause = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
            nanosleep(&pause, NULL);
        }
    }
    free(base);
    return rc;
}
