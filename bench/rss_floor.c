/* The RSS floor of a node: a program linked with the same libraries (libcurl and its TLS and
 * protocol dependencies, libevent, Lua, yajl) that only starts the pieces a node starts and
 * reports its resident memory. The node's own RSS is this plus what it allocates. */
#include <curl/curl.h>
#include <event2/event.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_parse.h>

static long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0) sscanf(line + strlen(field) + 1, "%ld", &kb);
    if (f) fclose(f);
    return kb;
}

int main(void) {
    long at_start = status_kb("VmRSS");
    struct event_base *base = event_base_new();
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    printf("floor: a program linked like the node: RSS %ld KB at start, %ld KB with libevent, Lua, "
           "libcurl and yajl initialised (private %ld KB)\n",
           at_start, status_kb("VmRSS"), status_kb("RssAnon"));
    yajl_free(h);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    lua_close(L);
    event_base_free(base);
    return 0;
}
