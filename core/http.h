/* http: the node's own HTTP listener, routing to the request handlers (requests.h). */
#ifndef SHAZBOT_HTTP_H
#define SHAZBOT_HTTP_H

#include "node.h"

#include <stddef.h>

/* Serves the endpoints on host:port (host NULL: every interface, IPv4 and IPv6). */
int http_listen(shazbot *node, const char *host, int port, char *err, size_t err_len);
void http_free(shazbot *node);

#endif
