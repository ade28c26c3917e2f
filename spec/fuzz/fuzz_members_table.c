/* The members table of `clustershazbot members` (bindings/cli/members_table.c) on any JSON
 * document and any clock from 1970 to the year 10889.
 *
 * Input: six bytes of the clock (milliseconds, big-endian), then the document. Properties: a
 * header line, then one row per record with a string baseUrl (counted here from the document
 * itself), then "N online, M offline" with those counts; every age is a whole number of
 * seconds (< 120), minutes (2 to 119), hours (2 to 47) or days (>= 2), never negative,
 * whatever the lastUpdate (the difference overflowed near INT64_MIN). */
#include "fuzz.h"
#include "members_table.h"

#include <ctype.h>

static size_t rows_in(yajl_val doc, const char *list) {
    yajl_val array = members_table_list(doc, list);
    size_t n = 0;
    for (size_t i = 0; array && i < YAJL_GET_ARRAY(array)->len; i++) {
        const char *path[] = {"baseUrl", NULL};
        n += yajl_tree_get(YAJL_GET_ARRAY(array)->values[i], path, yajl_t_string) != NULL;
    }
    return n;
}

/* No baseUrl holds a line break: then the output's lines are the table's rows. */
static bool urls_single_line(yajl_val doc, const char *list) {
    yajl_val array = members_table_list(doc, list);
    for (size_t i = 0; array && i < YAJL_GET_ARRAY(array)->len; i++) {
        const char *path[] = {"baseUrl", NULL};
        yajl_val url = yajl_tree_get(YAJL_GET_ARRAY(array)->values[i], path, yajl_t_string);
        if (url && strchr(YAJL_GET_STRING(url), '\n')) return false;
    }
    return true;
}

static void check_age(const char *row, size_t len) {
    static const char suffix[] = " ago";
    FUZZ_ASSERT(len > sizeof suffix && memcmp(row + len - (sizeof suffix - 1), suffix, sizeof suffix - 1) == 0,
                "a row without an age: %.*s", (int)len, row);
    size_t end = len - (sizeof suffix - 1); /* just past the unit */
    size_t start = end - 1;
    while (start > 0 && row[start - 1] != ' ') start--;
    const char *age = row + start;
    size_t digits = end - 1 - start;
    FUZZ_ASSERT(digits >= 1 && digits <= 19, "age \"%.*s\"", (int)(end - start), age);
    for (size_t i = 0; i < digits; i++) FUZZ_ASSERT(isdigit((unsigned char)age[i]), "age \"%.*s\"", (int)(end - start), age);
    long long v = strtoll(age, NULL, 10);
    char unit = age[digits];
    FUZZ_ASSERT((unit == 's' && v < 120) || (unit == 'm' && v >= 2 && v < 120) || (unit == 'h' && v >= 2 && v < 48) ||
                    (unit == 'd' && v >= 2),
                "age \"%.*s\"", (int)(end - start), age);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 6) return 0;
    long long now_ms = 0;
    for (int i = 0; i < 6; i++) now_ms = now_ms << 8 | data[i];
    char *json = malloc(size - 6 + 1);
    if (!json) abort();
    memcpy(json, data + 6, size - 6);
    json[size - 6] = '\0';
    yajl_val doc = yajl_tree_parse(json, NULL, 0);
    free(json);
    if (!doc) return 0;

    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    if (!f) abort();
    FUZZ_ASSERT(members_table_print(f, doc, now_ms), "members_table_print failed");
    fclose(f);

    size_t online = rows_in(doc, "online"), offline = rows_in(doc, "offline");
    char summary[64];
    int summary_len = snprintf(summary, sizeof summary, "%zu online, %zu offline\n", online, offline);
    FUZZ_ASSERT(out_len >= (size_t)summary_len && strcmp(out + out_len - summary_len, summary) == 0,
                "the summary is not \"%.*s\": %s", summary_len - 1, summary, out);
    FUZZ_ASSERT(strncmp(out, "BASE URL", 8) == 0, "no header: %s", out);
    if (urls_single_line(doc, "online") && urls_single_line(doc, "offline")) {
        size_t lines = 0;
        for (const char *line = out; line < out + out_len; lines++) {
            const char *eol = memchr(line, '\n', (size_t)(out + out_len - line));
            FUZZ_ASSERT(eol, "an unterminated line");
            if (lines > 0 && eol + 1 < out + out_len) check_age(line, (size_t)(eol - line));
            line = eol + 1;
        }
        FUZZ_ASSERT(lines == online + offline + 2, "%zu lines for %zu rows", lines, online + offline);
    }
    free(out);
    yajl_tree_free(doc);
    return 0;
}
