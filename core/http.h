/* http: the node's own listener, its routes on top of http_server. */
#ifndef SHAZBOT_HTTP_H
#define SHAZBOT_HTTP_H

#include "clustershazbot.h"
#include "http_server.h"

#include <stddef.h>

typedef struct node_listener {
    http_server *server; /* NULL until the node listens */
    char *base_path;     /* the path of the base URL ("/" or "/prefix/"), under which the endpoints lie */
} node_listener;

/* Serves the endpoints on host:port (a NULL host: every interface). 0, or -1 with a message. */
int http_listen(shazbot *node, const char *host, int port, char *err, size_t err_len);
/* Stops serving; the node can listen again. */
void http_free(shazbot *node);

#endif
