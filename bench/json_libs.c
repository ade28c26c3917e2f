/* Measures the C JSON libraries Debian offers on the body this engine handles most:
 * a gossip message of 10,000 records. The engine's choice of library rests on these figures
 * (see README, "Choice of JSON library"). Build: cmake target bench_json_libs. */
#include <cjson/cJSON.h>
#include <jansson.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>
#define JSMN_STRICT       /* its strictest mode */
#define JSMN_PARENT_LINKS /* and its fastest: no walk back to find a token's parent */
#include <jsmn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *make_body(int records, size_t *len) {
    size_t cap = (size_t)records * 100 + 64, n = 0;
    char *s = malloc(cap);
    n += (size_t)sprintf(s + n, "{\"message\":\"gossip\",\"online\":[");
    for (int i = 0; i < records; i++)
        n += (size_t)sprintf(s + n, "%s{\"baseUrl\":\"http://node-%05d.example.internal:3000/\",\"monitor\":false,\"lastUpdate\":17954786%05d}",
                     i ? "," : "", i, i);
    n += (size_t)sprintf(s + n, "],\"offline\":[]}");
    *len = n;
    return s;
}

/* In json_c.c: json-c's names clash with jansson's in one file. */
void json_c_parse(const char *body, size_t len);

static int sax_count;
static int on_string(void *ctx, const unsigned char *s, size_t l) { (void)ctx; (void)s; (void)l; sax_count++; return 1; }
static int on_number(void *ctx, const char *s, size_t l) { (void)ctx; (void)s; (void)l; return 1; }
static int on_bool(void *ctx, int b) { (void)ctx; (void)b; return 1; }

#define TIME(label, rounds, stmt) do { \
    double t0 = now_ms(); \
    for (int r = 0; r < rounds; r++) { stmt; } \
    printf("%-34s %7.2f ms\n", label, (now_ms() - t0) / rounds); \
} while (0)

int main(void) {
    size_t len;
    char *body = make_body(10000, &len);
    const int rounds = 50;
    printf("body: %zu bytes, 10000 records, mean of %d rounds\n", len, rounds);

    TIME("cJSON parse", rounds, { cJSON *j = cJSON_ParseWithLength(body, len); cJSON_Delete(j); });
    TIME("cJSON parse+print", rounds, {
        cJSON *j = cJSON_ParseWithLength(body, len);
        char *o = cJSON_PrintUnformatted(j); free(o); cJSON_Delete(j); });
    TIME("jansson parse", rounds, { json_t *j = json_loadb(body, len, 0, NULL); json_decref(j); });
    TIME("jansson parse+print", rounds, {
        json_t *j = json_loadb(body, len, 0, NULL);
        char *o = json_dumps(j, JSON_COMPACT); free(o); json_decref(j); });
    TIME("json-c parse", rounds, json_c_parse(body, len));
    char *zbody = strndup(body, len);
    TIME("yajl tree parse", rounds, { yajl_val v = yajl_tree_parse(zbody, NULL, 0); yajl_tree_free(v); });
    yajl_callbacks cb = { .yajl_boolean = on_bool, .yajl_number = on_number, .yajl_string = on_string };
    TIME("yajl SAX parse (no tree)", rounds, {
        yajl_handle h = yajl_alloc(&cb, NULL, NULL);
        yajl_parse(h, (const unsigned char *)body, len); yajl_complete_parse(h); yajl_free(h); });
    TIME("yajl SAX parse, no UTF-8 check", rounds, {
        yajl_handle h = yajl_alloc(&cb, NULL, NULL);
        yajl_config(h, yajl_dont_validate_strings, 1);
        yajl_parse(h, (const unsigned char *)body, len); yajl_complete_parse(h); yajl_free(h); });
    /* jsmn is a tokenizer: it finds where tokens are and does not check what they hold. It
     * is timed here with its tokens allocated beforehand, as a lower bound. */
    jsmntok_t *tokens = malloc(sizeof *tokens * 100000);
    int token_count = 0;
    TIME("jsmn 1.1 tokens (strict mode)", rounds, {
        jsmn_parser p; jsmn_init(&p);
        token_count = jsmn_parse(&p, body, len, tokens, 100000); });
    /* Bodies that are not JSON; every one of them is a 400 for the engine (yajl refuses each). */
    static const char *not_json[] = {
        "{\"a\":trux}", "{\"a\":01}", "{\"a\":1.2.3}", "{\"a\":-}", "{\"a\":1 \"b\":2}",
        "[1,,2]", "[1 2]", "{\"a\":1,}", "{\"a\":\"\xff\xfe\"}", "{\"a\":\"x\x01y\"}",
    };
    int accepted = 0, count = (int)(sizeof not_json / sizeof *not_json);
    for (int i = 0; i < count; i++) {
        jsmn_parser p; jsmn_init(&p);
        if (jsmn_parse(&p, not_json[i], strlen(not_json[i]), tokens, 100000) >= 0) accepted++;
    }
    printf("jsmn: %d tokens; accepts %d of %d bodies that are not JSON (bad literals, numbers,\n"
           "      separators, UTF-8, control characters)\n", token_count, accepted, count);
    free(tokens);
    free(zbody);
    free(body);
    return sax_count == 0;
}
