/* members_table: see members_table.h. */
#include "members_table.h"

#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

typedef struct row {
    const char *url;
    bool online, monitor;
    long long last_update;
} row;

static int compare_rows(const void *a, const void *b) {
    const row *x = a, *y = b;
    if (x->online != y->online) return x->online ? -1 : 1;
    return strcmp(x->url, y->url);
}

/* 59s, 5m, 3h, 12d: the largest unit of which there are at least 2 (119s, not 1m), so that
 * rounding down never hides nearly half of the age. */
static void human_age(long long ms, char *out, size_t len) {
    long long s = ms < 0 ? 0 : ms / 1000;
    if (s < 120) snprintf(out, len, "%llds", s);
    else if (s < 7200) snprintf(out, len, "%lldm", s / 60);
    else if (s < 172800) snprintf(out, len, "%lldh", s / 3600);
    else snprintf(out, len, "%lldd", s / 86400);
}

yajl_val members_table_list(yajl_val doc, const char *list) {
    const char *path[] = {list, NULL};
    return yajl_tree_get(doc, path, yajl_t_array);
}

static size_t collect_rows(yajl_val doc, const char *list, bool online, row *rows, size_t n) {
    yajl_val array = members_table_list(doc, list);
    for (size_t i = 0; array && i < YAJL_GET_ARRAY(array)->len; i++) {
        yajl_val r = YAJL_GET_ARRAY(array)->values[i];
        const char *url_path[] = {"baseUrl", NULL}, *monitor_path[] = {"monitor", NULL},
                   *time_path[] = {"lastUpdate", NULL};
        yajl_val url = yajl_tree_get(r, url_path, yajl_t_string);
        yajl_val stamp = yajl_tree_get(r, time_path, yajl_t_number);
        if (!url) continue;
        rows[n++] = (row){YAJL_GET_STRING(url), online, YAJL_IS_TRUE(yajl_tree_get(r, monitor_path, yajl_t_any)),
                          stamp && YAJL_IS_INTEGER(stamp) ? YAJL_GET_INTEGER(stamp) : 0};
    }
    return n;
}

static bool kept(yajl_val record, const char *list, const members_filter *f) {
    if (f->status && strcmp(f->status, list) != 0) return false;
    if (!f->pattern) return true;
    const char *url_path[] = {"baseUrl", NULL};
    yajl_val url = yajl_tree_get(record, url_path, yajl_t_string);
    return url && fnmatch(f->pattern, YAJL_GET_STRING(url), 0) == 0;
}

void members_table_filter(yajl_val doc, const members_filter *f) {
    static const char *const lists[] = {"online", "offline"};
    for (size_t l = 0; l < 2; l++) {
        yajl_val array = members_table_list(doc, lists[l]);
        if (!array) continue;
        size_t n = 0;
        for (size_t i = 0; i < YAJL_GET_ARRAY(array)->len; i++) {
            yajl_val r = YAJL_GET_ARRAY(array)->values[i];
            if (kept(r, lists[l], f)) YAJL_GET_ARRAY(array)->values[n++] = r;
            else yajl_tree_free(r);
        }
        YAJL_GET_ARRAY(array)->len = n;
    }
}

static void print_to(void *ctx, const char *s, size_t len) { fwrite(s, 1, len, ctx); }

static void gen_key(yajl_gen g, const char *key) { yajl_gen_string(g, (const unsigned char *)key, strlen(key)); }

bool members_table_write_json(FILE *out, yajl_val doc) {
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g) return false;
    yajl_gen_config(g, yajl_gen_print_callback, print_to, out);
    yajl_gen_map_open(g);
    static const char *const lists[] = {"online", "offline"};
    for (size_t l = 0; l < 2; l++) {
        yajl_val array = members_table_list(doc, lists[l]);
        if (!array) continue;
        gen_key(g, lists[l]);
        yajl_gen_array_open(g);
        for (size_t i = 0; i < YAJL_GET_ARRAY(array)->len; i++) {
            yajl_val r = YAJL_GET_ARRAY(array)->values[i];
            const char *url_path[] = {"baseUrl", NULL}, *monitor_path[] = {"monitor", NULL},
                       *time_path[] = {"lastUpdate", NULL};
            yajl_val url = yajl_tree_get(r, url_path, yajl_t_string);
            yajl_val stamp = yajl_tree_get(r, time_path, yajl_t_number);
            if (!url) continue;
            yajl_gen_map_open(g);
            gen_key(g, "baseUrl");
            gen_key(g, YAJL_GET_STRING(url));
            gen_key(g, "monitor");
            yajl_gen_bool(g, YAJL_IS_TRUE(yajl_tree_get(r, monitor_path, yajl_t_any)));
            gen_key(g, "lastUpdate");
            if (stamp) yajl_gen_number(g, YAJL_GET_NUMBER(stamp), strlen(YAJL_GET_NUMBER(stamp)));
            else yajl_gen_null(g);
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
    }
    bool ok = yajl_gen_map_close(g) == yajl_gen_status_ok;
    yajl_gen_free(g);
    fputc('\n', out);
    return ok;
}

static size_t list_length(yajl_val doc, const char *list) {
    yajl_val array = members_table_list(doc, list);
    return array ? YAJL_GET_ARRAY(array)->len : 0;
}

bool members_table_print(FILE *out, yajl_val doc, long long now_ms) {
    size_t capacity = list_length(doc, "online") + list_length(doc, "offline");
    row *rows = calloc(capacity + 1, sizeof *rows);
    if (!rows) return false;
    size_t n = collect_rows(doc, "online", true, rows, 0);
    size_t online = n;
    n = collect_rows(doc, "offline", false, rows, n);
    qsort(rows, n, sizeof *rows, compare_rows);
    int width = 8;
    for (size_t i = 0; i < n; i++) width = (int)strlen(rows[i].url) > width ? (int)strlen(rows[i].url) : width;
    fprintf(out, "%-*s  %-7s  %-7s  %s\n", width, "BASE URL", "STATUS", "MONITOR", "UPDATED");
    for (size_t i = 0; i < n; i++) {
        char age[32];
        /* A lastUpdate near INT64_MIN (a peer's broken clock) would overflow the difference. */
        long long since = rows[i].last_update < now_ms - LLONG_MAX / 2 ? LLONG_MAX / 2 : now_ms - rows[i].last_update;
        human_age(since, age, sizeof age);
        fprintf(out, "%-*s  %-7s  %-7s  %s ago\n", width, rows[i].url, rows[i].online ? "online" : "offline",
                rows[i].monitor ? "yes" : "no", age);
    }
    fprintf(out, "%zu online, %zu offline\n", online, n - online);
    free(rows);
    return true;
}

