/* config: every kind of variable, good and bad values; a refusal names the variable and the
 * value and changes nothing; the required ones; ports of URLs; deep copies. */
#include "check.h"
#include "config.h"

#include <stdlib.h>

#define BASE "http://node-a.test:3000/"

static const char *required[] = {
    "SHAZBOT_SECRET",           "SHAZBOT_CONTROL_SECRET",     "SHAZBOT_BASE_URL",
    "SHAZBOT_MASTER_LIST",      "SHAZBOT_MASTER_LIST_UPDATE", "SHAZBOT_MASTER_LIST_UPDATE_AUTH",
};

static const char *required_value(size_t i) {
    return i == 2 ? BASE : i == 3 ? "http://master.test/list.json" : "some-value";
}

/* Sets a variable that must be accepted; on failure says why. */
static bool set_ok(shazbot_settings *s, const char *name, const char *value, int line) {
    char err[512] = "";
    bool ok = config_set(s, name, value, err, sizeof err);
    if (!check_that(ok, __FILE__, line, "accepted"))
        fprintf(stderr, "    %s=\"%s\": %s\n", name, value, err);
    return ok;
}
#define SET_OK(s, name, value) set_ok((s), (name), (value), __LINE__)

/* Sets a variable that must be refused: the error names the variable and the value, and the
 * settings are exactly as before (compared field by field through a copy). */
static void set_bad(shazbot_settings *s, const char *name, const char *value, int line) {
    shazbot_settings before;
    if (!config_copy(&before, s)) {
        check_that(0, __FILE__, line, "config_copy");
        return;
    }
    char err[512] = "";
    if (!check_that(!config_set(s, name, value, err, sizeof err), __FILE__, line, "refused")) {
        fprintf(stderr, "    %s=\"%s\" was accepted\n", name, value);
        config_free(&before);
        return;
    }
    char quoted[300];
    snprintf(quoted, sizeof quoted, "\"%s\"", value);
    if (!check_that(strstr(err, name) != NULL && strstr(err, quoted) != NULL, __FILE__, line,
                    "error names the variable and the value"))
        fprintf(stderr, "    %s=\"%s\": \"%s\"\n", name, value, err);

    /* Unchanged: every number, flag and string. */
    bool same = before.gossip_interval == s->gossip_interval &&
                before.announce_minimum == s->announce_minimum &&
                before.announce_interval == s->announce_interval && before.monitor == s->monitor &&
                before.update_master_list_on_shutdown == s->update_master_list_on_shutdown &&
                before.listen_port == s->listen_port && before.log_level == s->log_level &&
                before.max_body == s->max_body && before.max_clock_skew == s->max_clock_skew &&
                before.gossip_timeout == s->gossip_timeout && before.gossip_retry == s->gossip_retry &&
                before.suspicion_window == s->suspicion_window && before.compression == s->compression &&
                before.profile == s->profile && before.explicit_set == s->explicit_set;
    const char *const strings[][2] = {
        {before.secret, s->secret},
        {before.control_secret, s->control_secret},
        {before.base_url, s->base_url},
        {before.master_list, s->master_list},
        {before.master_list_update, s->master_list_update},
        {before.master_list_update_auth, s->master_list_update_auth},
        {before.listen_host, s->listen_host},
        {before.policy_path, s->policy_path},
        {before.happy_secret, s->happy_secret},
    };
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++) {
        const char *a = strings[i][0], *b = strings[i][1];
        same = same && (a && b ? strcmp(a, b) == 0 : a == b);
    }
    if (!check_that(same, __FILE__, line, "settings unchanged after a refusal"))
        fprintf(stderr, "    after %s=\"%s\"\n", name, value);
    config_free(&before);
}
#define SET_BAD(s, name, value) set_bad((s), (name), (value), __LINE__)

static void test_defaults(void) {
    shazbot_settings s;
    config_init(&s);
    CHECK(s.gossip_interval == 30);
    CHECK(s.announce_minimum == 300);
    CHECK(s.announce_interval == 600);
    CHECK(!s.monitor);
    CHECK(!s.update_master_list_on_shutdown);
    CHECK(s.secret == NULL && s.base_url == NULL && s.listen_host == NULL && s.happy_secret == NULL);
    CHECK_INT(s.listen_port, 0);
    CHECK_INT(s.log_level, LOG_INFO);
    CHECK(s.max_clock_skew > 0);
    CHECK(s.max_body >= 1024);
    config_free(&s);
}

static void test_numbers(void) {
    char err_bound[256];
    shazbot_settings s;
    config_init(&s);
    static const char *numeric[] = {"SHAZBOT_GOSSIP_INTERVAL", "SHAZBOT_MASTER_ANNOUNCE_MINIMUM",
                                    "SHAZBOT_MASTER_ANNOUNCE_INTERVAL", "SHAZBOT_MAX_CLOCK_SKEW",
                                    "SHAZBOT_REQUEST_TIMEOUT"};
    static const char *bad[] = {"abc", "", "1x", "x1", "nan", "NaN", "inf", "-inf", "infinity", "-1",
                                "-0.5", " 5", "5 ", "5s", "1e999", "1,5", "--1", "\t"};
    for (size_t v = 0; v < sizeof numeric / sizeof *numeric; v++)
        for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) SET_BAD(&s, numeric[v], bad[b]);
    CHECK(s.gossip_interval == 30);

    /* 0 seconds between gossip rounds is no interval; 0 is fine where it means "none". */
    SET_BAD(&s, "SHAZBOT_GOSSIP_INTERVAL", "0");
    SET_BAD(&s, "SHAZBOT_GOSSIP_INTERVAL", "0.0");
    SET_BAD(&s, "SHAZBOT_GOSSIP_INTERVAL", "-0");
    SET_BAD(&s, "SHAZBOT_REQUEST_TIMEOUT", "0"); /* no time at all for a request */
    CHECK(s.request_timeout == 20);
    if (SET_OK(&s, "SHAZBOT_REQUEST_TIMEOUT", "2.5")) CHECK(s.request_timeout == 2.5);
    if (SET_OK(&s, "SHAZBOT_MASTER_ANNOUNCE_MINIMUM", "0")) CHECK(s.announce_minimum == 0);
    if (SET_OK(&s, "SHAZBOT_MASTER_ANNOUNCE_INTERVAL", "0")) CHECK(s.announce_interval == 0);
    if (SET_OK(&s, "SHAZBOT_MAX_CLOCK_SKEW", "0")) CHECK(s.max_clock_skew == 0);

    if (SET_OK(&s, "SHAZBOT_GOSSIP_INTERVAL", "2.5")) CHECK(s.gossip_interval == 2.5);
    if (SET_OK(&s, "SHAZBOT_GOSSIP_INTERVAL", "45")) CHECK(s.gossip_interval == 45);
    if (SET_OK(&s, "SHAZBOT_GOSSIP_INTERVAL", "0.05")) CHECK(s.gossip_interval == 0.05);
    if (SET_OK(&s, "SHAZBOT_MASTER_ANNOUNCE_INTERVAL", "1e3")) CHECK(s.announce_interval == 1000);
    if (SET_OK(&s, "SHAZBOT_MAX_CLOCK_SKEW", "120")) CHECK(s.max_clock_skew == 120);
    /* A refusal after good values keeps the good values. */
    SET_BAD(&s, "SHAZBOT_GOSSIP_INTERVAL", "abc");
    CHECK(s.gossip_interval == 0.05);

    /* Upper bounds: the largest meaningful value is taken, one beyond is refused. */
    static const struct { const char *name, *max, *beyond; } bounds[] = {
        {"SHAZBOT_GOSSIP_INTERVAL", "2592000", "2592000.5"}, {"SHAZBOT_MASTER_ANNOUNCE_MINIMUM", "2592000", "2592001"},
        {"SHAZBOT_MASTER_ANNOUNCE_INTERVAL", "2592000", "1e16"}, {"SHAZBOT_MAX_CLOCK_SKEW", "86400", "1e16"},
        {"SHAZBOT_REQUEST_TIMEOUT", "3600", "1e16"}};
    for (size_t b = 0; b < sizeof bounds / sizeof *bounds; b++) {
        SET_OK(&s, bounds[b].name, bounds[b].max);
        SET_BAD(&s, bounds[b].name, bounds[b].beyond);
    }
    CHECK(!config_set(&s, "SHAZBOT_REQUEST_TIMEOUT", "1e16", err_bound, sizeof err_bound));
    CHECK_CONTAINS(err_bound, "SHAZBOT_REQUEST_TIMEOUT: \"1e16\" is more seconds than the most this setting takes, 3600");

    /* The error, word for word, for one of them. */
    char err[256];
    CHECK(!config_set(&s, "SHAZBOT_GOSSIP_INTERVAL", "1x", err, sizeof err));
    CHECK_CONTAINS(err, "SHAZBOT_GOSSIP_INTERVAL: \"1x\"");

    /* Bytes: whole numbers within bounds. */
    static const char *bad_bytes[] = {"abc", "", "1023", "0", "-2048", "1073741825", "4096.5", "1e999", "nan"};
    for (size_t b = 0; b < sizeof bad_bytes / sizeof *bad_bytes; b++) SET_BAD(&s, "SHAZBOT_MAX_BODY", bad_bytes[b]);
    if (SET_OK(&s, "SHAZBOT_MAX_BODY", "1024")) CHECK_INT(s.max_body, 1024);
    if (SET_OK(&s, "SHAZBOT_MAX_BODY", "1073741824")) CHECK_INT(s.max_body, 1073741824);
    if (SET_OK(&s, "SHAZBOT_MAX_BODY", "65536")) CHECK_INT(s.max_body, 65536);
    config_free(&s);
}

static void test_booleans_and_levels(void) {
    shazbot_settings s;
    config_init(&s);
    static const char *trues[] = {"true", "TRUE", "True", "tRuE"};
    static const char *falses[] = {"false", "FALSE", "False", "fAlSe"};
    static const char *flags[] = {"SHAZBOT_MONITOR", "SHAZBOT_UPDATE_MASTER_LIST_ON_SHUTDOWN"};
    for (size_t f = 0; f < 2; f++) {
        bool *field = f == 0 ? &s.monitor : &s.update_master_list_on_shutdown;
        for (size_t i = 0; i < 4; i++) {
            if (SET_OK(&s, flags[f], trues[i])) CHECK(*field);
            if (SET_OK(&s, flags[f], falses[i])) CHECK(!*field);
        }
        static const char *bad[] = {"yes", "no", "1", "0", "", " true", "true ", "truee", "t", "on"};
        SET_OK(&s, flags[f], "true");
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) SET_BAD(&s, flags[f], bad[i]);
        CHECK(*field);
        SET_OK(&s, flags[f], "false");
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) SET_BAD(&s, flags[f], bad[i]);
        CHECK(!*field);
    }

    if (SET_OK(&s, "SHAZBOT_LOG_LEVEL", "DEBUG")) CHECK_INT(s.log_level, LOG_DEBUG);
    if (SET_OK(&s, "SHAZBOT_LOG_LEVEL", "warn")) CHECK_INT(s.log_level, LOG_WARN);
    if (SET_OK(&s, "SHAZBOT_LOG_LEVEL", "Error")) CHECK_INT(s.log_level, LOG_ERROR);
    SET_BAD(&s, "SHAZBOT_LOG_LEVEL", "verbose");
    SET_BAD(&s, "SHAZBOT_LOG_LEVEL", "");
    SET_BAD(&s, "SHAZBOT_LOG_LEVEL", "3");
    CHECK_INT(s.log_level, LOG_ERROR);
    config_free(&s);
}

static void test_listen(void) {
    shazbot_settings s;
    config_init(&s);
    if (SET_OK(&s, "SHAZBOT_LISTEN", "127.0.0.1:80")) {
        CHECK_STR(s.listen_host, "127.0.0.1");
        CHECK_INT(s.listen_port, 80);
    }
    if (SET_OK(&s, "SHAZBOT_LISTEN", "[::1]:8080")) {
        CHECK_STR(s.listen_host, "::1");
        CHECK_INT(s.listen_port, 8080);
    }
    if (SET_OK(&s, "SHAZBOT_LISTEN", ":9000")) {
        CHECK(s.listen_host == NULL); /* every interface */
        CHECK_INT(s.listen_port, 9000);
    }
    if (SET_OK(&s, "SHAZBOT_LISTEN", "localhost:65535")) {
        CHECK_STR(s.listen_host, "localhost");
        CHECK_INT(s.listen_port, 65535);
    }
    if (SET_OK(&s, "SHAZBOT_LISTEN", "[2001:db8::7]:443")) {
        CHECK_STR(s.listen_host, "2001:db8::7");
        CHECK_INT(s.listen_port, 443);
    }
    static const char *bad[] = {
        "",            "80",          "localhost",    "host:",         ":",
        "host:abc",    "host:80x",    "host:70000",   "host:65536",    "host:-1",
        "host: 80",    "host:+80",    "[::1]",        "[::1]:",        "[::1]8080",
        "[::1:8080",   "::1]:8080",   "::1:8080",     "[]:80",         "host:99999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) SET_BAD(&s, "SHAZBOT_LISTEN", bad[i]);
    CHECK_STR(s.listen_host, "2001:db8::7");
    CHECK_INT(s.listen_port, 443);
    config_free(&s);
    CHECK(s.listen_host == NULL);
}

static void test_strings_and_names(void) {
    shazbot_settings s;
    config_init(&s);
    /* Required strings may not be empty; a later value replaces an earlier one. */
    SET_BAD(&s, "SHAZBOT_SECRET", "");
    CHECK(s.secret == NULL);
    if (SET_OK(&s, "SHAZBOT_SECRET", "one")) CHECK_STR(s.secret, "one");
    if (SET_OK(&s, "SHAZBOT_SECRET", "two")) CHECK_STR(s.secret, "two");
    SET_BAD(&s, "SHAZBOT_SECRET", "");
    CHECK_STR(s.secret, "two");

    /* The own baseUrl is checked as the wire checks every baseUrl. */
    static const char *bad_urls[] = {"ftp://x.test/", "http://x.test", "http:///", "", "x.test/",
                                     "http://x y.test/"};
    for (size_t i = 0; i < sizeof bad_urls / sizeof *bad_urls; i++) SET_BAD(&s, "SHAZBOT_BASE_URL", bad_urls[i]);
    CHECK(s.base_url == NULL);
    if (SET_OK(&s, "SHAZBOT_BASE_URL", BASE)) CHECK_STR(s.base_url, BASE);
    SET_BAD(&s, "SHAZBOT_BASE_URL", "http://no-slash.test");
    CHECK_STR(s.base_url, BASE);

    if (SET_OK(&s, "HAPPY_SECRET", "none")) CHECK_STR(s.happy_secret, "none");
    if (SET_OK(&s, "SHAZBOT_POLICY", "/etc/shazbot/policy.lua")) CHECK_STR(s.policy_path, "/etc/shazbot/policy.lua");

    /* Unknown names, and names are case-sensitive like the environment. */
    static const char *unknown[] = {"SHAZBOT_NOPE", "shazbot_secret", "", "SHAZBOT_SECRET ", "SECRET"};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        char err[256] = "";
        CHECK(!config_set(&s, unknown[i], "x", err, sizeof err));
        CHECK_CONTAINS(err, unknown[i]);
        CHECK_CONTAINS(err, "not a clustershazbot setting");
    }
    CHECK_STR(s.secret, "two");
    config_free(&s);
}

static void test_check(void) {
    shazbot_settings s;
    config_init(&s);
    char err[256];
    /* Each missing one is named in turn, the first missing first. */
    for (size_t i = 0; i < sizeof required / sizeof *required; i++) {
        err[0] = '\0';
        CHECK(!config_check(&s, err, sizeof err));
        CHECK_CONTAINS(err, required[i]);
        CHECK_CONTAINS(err, "missing");
        SET_OK(&s, required[i], required_value(i));
    }
    CHECK(config_check(&s, err, sizeof err));
    config_free(&s);

    /* Not in order: the first missing of the list is named, not the last. */
    config_init(&s);
    SET_OK(&s, "SHAZBOT_SECRET", "a");
    SET_OK(&s, "SHAZBOT_MASTER_LIST", "http://master.test/");
    CHECK(!config_check(&s, err, sizeof err));
    CHECK_CONTAINS(err, "SHAZBOT_CONTROL_SECRET");
    CHECK_NOT_CONTAINS(err, "SHAZBOT_BASE_URL");
    SET_OK(&s, "SHAZBOT_CONTROL_SECRET", "b");
    CHECK(!config_check(&s, err, sizeof err));
    CHECK_CONTAINS(err, "SHAZBOT_BASE_URL");
    config_free(&s);
}

static void test_from_env(void) {
    static const char *others[] = {
        "SHAZBOT_GOSSIP_INTERVAL", "SHAZBOT_MASTER_ANNOUNCE_MINIMUM", "SHAZBOT_MASTER_ANNOUNCE_INTERVAL",
        "SHAZBOT_MONITOR", "SHAZBOT_UPDATE_MASTER_LIST_ON_SHUTDOWN", "SHAZBOT_LISTEN", "SHAZBOT_POLICY",
        "SHAZBOT_LOG_LEVEL", "SHAZBOT_MAX_BODY", "SHAZBOT_MAX_CLOCK_SKEW", "SHAZBOT_REQUEST_TIMEOUT", "HAPPY_SECRET",
    };
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) unsetenv(others[i]);
    for (size_t i = 0; i < sizeof required / sizeof *required; i++) unsetenv(required[i]);

    shazbot_settings s;
    char err[256];
    config_init(&s);
    CHECK(!config_from_env(&s, err, sizeof err));
    CHECK_CONTAINS(err, "SHAZBOT_SECRET");
    config_free(&s);

    for (size_t i = 0; i < sizeof required / sizeof *required; i++) setenv(required[i], required_value(i), 1);
    setenv("SHAZBOT_MONITOR", "TRUE", 1);
    setenv("SHAZBOT_GOSSIP_INTERVAL", "nan", 1);
    config_init(&s);
    CHECK(!config_from_env(&s, err, sizeof err));
    CHECK_CONTAINS(err, "SHAZBOT_GOSSIP_INTERVAL");
    CHECK_CONTAINS(err, "\"nan\"");
    config_free(&s);

    setenv("SHAZBOT_GOSSIP_INTERVAL", "12", 1);
    config_init(&s);
    CHECK(config_from_env(&s, err, sizeof err));
    CHECK(s.gossip_interval == 12);
    CHECK(s.monitor);
    CHECK_STR(s.base_url, BASE);
    config_free(&s);
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) unsetenv(others[i]);
    for (size_t i = 0; i < sizeof required / sizeof *required; i++) unsetenv(required[i]);
}

static void test_url_port(void) {
    static const struct {
        const char *url;
        int port;
    } cases[] = {
        {"http://a.test/", 80},
        {"https://a.test/", 443},
        {"http://a.test:8080/", 8080},
        {"https://a.test:8443/base/", 8443},
        {"http://a.test:443/", 443},
        {"https://a.test:80/", 80},
        {"http://a.test", 80},
        {"https://a.test:81", 81},
        {"http://a.test/x:99/", 80},         /* a colon in the path is not a port */
        {"http://[::1]/", 80},
        {"https://[::1]/", 443},
        {"http://[::1]:3000/", 3000},
        {"https://[2001:db8::1]:65535/", 65535},
        {"http://a.test:1/", 1},
        {"http://a.test:/", 80},             /* an empty port is the scheme's (RFC 3986 3.2.3) */
        {"http://user:pw@a.test/", 80},      /* userinfo is not a port */
        {"http://user:pw@a.test:8081/", 8081},
        {"http://a.test:0/", 0},
        {"http://a.test:65536/", 0},
        {"http://a.test:80x/", 0},
        {"http://a.test:-80/", 0},
        {"http://a.test: 80/", 0},
        {"no scheme", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int got = config_url_port(cases[i].url);
        if (!check_that(got == cases[i].port, __FILE__, __LINE__, "config_url_port"))
            fprintf(stderr, "    %s: got %d, want %d\n", cases[i].url, got, cases[i].port);
    }
}

static void test_copy(void) {
    shazbot_settings src, dst;
    config_init(&src);
    for (size_t i = 0; i < sizeof required / sizeof *required; i++) SET_OK(&src, required[i], required_value(i));
    SET_OK(&src, "SHAZBOT_LISTEN", "[::1]:8080");
    SET_OK(&src, "SHAZBOT_POLICY", "/tmp/policy.lua");
    SET_OK(&src, "HAPPY_SECRET", "happy");
    SET_OK(&src, "SHAZBOT_GOSSIP_INTERVAL", "7");
    SET_OK(&src, "SHAZBOT_MONITOR", "true");
    SET_OK(&src, "SHAZBOT_LOG_LEVEL", "debug");
    SET_OK(&src, "SHAZBOT_MAX_BODY", "4096");

    CHECK(config_copy(&dst, &src));
    /* Different memory, same text. */
    CHECK(dst.secret != src.secret && dst.base_url != src.base_url && dst.listen_host != src.listen_host &&
          dst.policy_path != src.policy_path && dst.happy_secret != src.happy_secret &&
          dst.master_list_update_auth != src.master_list_update_auth);
    config_free(&src); /* the copy must not depend on it */
    CHECK(src.secret == NULL && src.listen_host == NULL);
    CHECK_STR(dst.secret, "some-value");
    CHECK_STR(dst.control_secret, "some-value");
    CHECK_STR(dst.base_url, BASE);
    CHECK_STR(dst.master_list, "http://master.test/list.json");
    CHECK_STR(dst.master_list_update, "some-value");
    CHECK_STR(dst.master_list_update_auth, "some-value");
    CHECK_STR(dst.listen_host, "::1");
    CHECK_INT(dst.listen_port, 8080);
    CHECK_STR(dst.policy_path, "/tmp/policy.lua");
    CHECK_STR(dst.happy_secret, "happy");
    CHECK(dst.gossip_interval == 7);
    CHECK(dst.monitor);
    CHECK_INT(dst.log_level, LOG_DEBUG);
    CHECK_INT(dst.max_body, 4096);
    char err[256];
    CHECK(config_check(&dst, err, sizeof err));
    /* The copy is a settings like any other: it can be changed and freed on its own. */
    SET_OK(&dst, "SHAZBOT_SECRET", "changed");
    CHECK_STR(dst.secret, "changed");

    /* A copy of a copy, and of empty settings. */
    shazbot_settings third;
    CHECK(config_copy(&third, &dst));
    config_free(&dst);
    CHECK_STR(third.secret, "changed");
    CHECK_STR(third.listen_host, "::1");
    config_free(&third);

    shazbot_settings empty, empty_copy;
    config_init(&empty);
    CHECK(config_copy(&empty_copy, &empty));
    CHECK(empty_copy.secret == NULL && empty_copy.listen_host == NULL);
    CHECK(empty_copy.gossip_interval == 30);
    config_free(&empty_copy);
    config_free(&empty);
}

/* SHAZBOT_PROFILE: each profile's values (those of the README's table), explicit settings
 * winning whichever comes first, a second profile replacing the first, unknown names refused
 * with the choices and nothing changed. */
static void test_profiles(void) {
    static const struct {
        const char *name;
        profile_kind kind;
        double interval, timeout, retry, window, minimum, spread;
        codec_kind compression;
    } expected[] = {
        {"local", PROFILE_LOCAL, 1, 1, 0.5, 1.5, 5, 10, CODEC_IDENTITY},
        {"lan", PROFILE_LAN, 2, 1, 0.5, 3, 60, 120, CODEC_ZSTD},
        {"wan", PROFILE_WAN, 10, 5, 3, 30, 300, 600, CODEC_ZSTD},
    };
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++) {
        shazbot_settings s;
        config_init(&s);
        if (SET_OK(&s, "SHAZBOT_PROFILE", expected[i].name)) {
            CHECK_INT(s.profile, expected[i].kind);
            CHECK(strcmp(config_profile_name(s.profile), expected[i].name) == 0);
            CHECK(s.gossip_interval == expected[i].interval);
            CHECK(config_gossip_timeout(&s) == expected[i].timeout);
            CHECK(config_gossip_retry(&s) == expected[i].retry);
            CHECK(config_suspicion_window(&s) == expected[i].window);
            CHECK(s.announce_minimum == expected[i].minimum);
            CHECK(s.announce_interval == expected[i].spread);
            CHECK_INT(s.compression, expected[i].compression);
            /* What no profile touches stays as it was. */
            CHECK(s.max_clock_skew == 300 && s.request_timeout == 20 && s.max_body == 8u << 20);
        }
        config_free(&s);
    }

    shazbot_settings s;
    config_init(&s);
    CHECK(config_profile_name(s.profile) == NULL);
    /* Without a profile the timings follow the interval, as before. */
    CHECK(config_gossip_timeout(&s) == 5 && config_gossip_retry(&s) == 3 && config_suspicion_window(&s) == 45);

    /* Set before the profile: kept. */
    SET_OK(&s, "SHAZBOT_GOSSIP_INTERVAL", "7");
    SET_OK(&s, "SHAZBOT_COMPRESSION", "gzip");
    SET_OK(&s, "SHAZBOT_PROFILE", "wan");
    CHECK(s.gossip_interval == 7);
    CHECK_INT(s.compression, CODEC_GZIP);
    CHECK(config_gossip_timeout(&s) == 5 && config_gossip_retry(&s) == 3 && config_suspicion_window(&s) == 30);
    /* Set after it: replaces its value. */
    SET_OK(&s, "SHAZBOT_GOSSIP_RETRY", "1.25");
    CHECK(config_gossip_retry(&s) == 1.25);
    /* A second profile replaces what the first gave, and keeps what was set. */
    if (SET_OK(&s, "SHAZBOT_PROFILE", "LAN")) {
        CHECK_INT(s.profile, PROFILE_LAN);
        CHECK(s.gossip_interval == 7 && config_gossip_retry(&s) == 1.25);
        CHECK_INT(s.compression, CODEC_GZIP);
        CHECK(config_gossip_timeout(&s) == 1 && config_suspicion_window(&s) == 3 && s.announce_minimum == 60);
    }

    /* Unknown names: refused with the choices, nothing changed (set_bad compares). */
    static const char *bad[] = {"fast", "", "lan ", " wan", "none", "default", "LAN,wan", "lan\n"};
    for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) SET_BAD(&s, "SHAZBOT_PROFILE", bad[b]);
    char err[256];
    CHECK(!config_set(&s, "SHAZBOT_PROFILE", "datacentre", err, sizeof err));
    CHECK_CONTAINS(err, "SHAZBOT_PROFILE: \"datacentre\" is not one of local, lan, wan");
    CHECK_INT(s.profile, PROFILE_LAN);
    config_free(&s);

    /* From the environment, where the timeout is read before the profile (config.c's order). */
    static const char *timings[] = {"SHAZBOT_GOSSIP_INTERVAL", "SHAZBOT_GOSSIP_RETRY", "SHAZBOT_SUSPICION_WINDOW",
                                    "SHAZBOT_COMPRESSION", "SHAZBOT_MASTER_ANNOUNCE_MINIMUM",
                                    "SHAZBOT_MASTER_ANNOUNCE_INTERVAL"};
    for (size_t i = 0; i < sizeof timings / sizeof *timings; i++) unsetenv(timings[i]);
    setenv("SHAZBOT_PROFILE", "local", 1);
    setenv("SHAZBOT_GOSSIP_TIMEOUT", "0.25", 1);
    shazbot_settings e;
    config_init(&e);
    char env_err[256] = "";
    config_from_env(&e, env_err, sizeof env_err); /* the required ones are missing: no matter here */
    CHECK_INT(e.profile, PROFILE_LOCAL);
    CHECK(e.gossip_interval == 1 && config_gossip_timeout(&e) == 0.25 && config_gossip_retry(&e) == 0.5);
    CHECK_INT(e.compression, CODEC_IDENTITY);
    config_free(&e);
    unsetenv("SHAZBOT_PROFILE");
    unsetenv("SHAZBOT_GOSSIP_TIMEOUT");
}

int main(void) {
    test_defaults();
    test_profiles();
    test_numbers();
    test_booleans_and_levels();
    test_listen();
    test_strings_and_names();
    test_check();
    test_from_env();
    test_url_port();
    test_copy();
    return check_finish("test_config");
}
