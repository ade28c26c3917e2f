/* json-c, for bench_json_libs (json_libs.c): its names clash with jansson's, so it is timed
 * from a file of its own. */
#include <json-c/json.h>
#include <stddef.h>

void json_c_parse(const char *body, size_t len);

void json_c_parse(const char *body, size_t len) {
    json_tokener *tok = json_tokener_new();
    json_object *doc = json_tokener_parse_ex(tok, body, (int)len);
    json_object_put(doc);
    json_tokener_free(tok);
}
