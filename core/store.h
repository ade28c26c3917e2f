/* store: the master-list store's rules, for the store itself (store.c) and for the
 * simulator's virtual store (sim.c), so that simulated announcements meet the same answers. */
#ifndef SHAZBOT_STORE_H
#define SHAZBOT_STORE_H

#include <stddef.h>

#define STORE_ETAG_SIZE 24

/* The ETag of a list: FNV-1a over its bytes, so the same list always gets the same tag, across
 * restarts too. */
void store_etag(const char *list, size_t len, char out[STORE_ETAG_SIZE]);

/* 0 when a PUT carrying these headers may replace the list tagged `etag`; else the status of
 * its refusal: 401 (Authorization is not `auth`) or 412 (If-Match names another list). */
int store_put_refusal(const char *authorization, const char *auth, const char *if_match, const char *etag);

#endif
