/* requests: the endpoints of PROTOCOL.md as plain functions, (auth, body) -> (status, JSON),
 * on an engine: used by the node's listener (http.c), by hosts through the C API (shazbot.c)
 * and by the simulator's virtual network (sim.c) alike. Not a public header. */
#ifndef SHAZBOT_REQUESTS_H
#define SHAZBOT_REQUESTS_H

#include "buf.h"
#include "node.h"
#include "wire.h"

/* Each writes the answer body into `out` and returns the HTTP status. */
/* `sender`: the request's Clustershazbot-From header (ENGINE_SENDER_HEADER), NULL when none. */
int requests_gossip(engine *e, const char *auth, const char *sender, const wire_chunk *body, size_t chunks, buf *out);
/* The same request, merged, without writing the answer: 200, after which the answer is the
 * engine's state as a gossip message (for a listener that writes it in the coding its
 * client takes), or the refusal's status with its error in `error_out`. */
int requests_gossip_take(engine *e, const char *auth, const char *sender, const wire_chunk *body, size_t chunks,
                         buf *error_out);
/* What refuses a gossip (or, `control`, a control) request before its body is read: 0, or
 * the status with its error in `out`. So that a compressed body is decoded for those who
 * hold the secret only. */
int requests_post_refused(engine *e, bool control, const char *auth, buf *out);
/* The same request as records (a transport that carries them, driver.h): 200, after which the
 * answer is the engine's state, or the refusal's status with its error in `error_out`. */
int requests_gossip_records(engine *e, const char *auth, const char *sender, const member_update *u, size_t count,
                            buf *error_out);
int requests_list(engine *e, const char *auth, buf *out);
/* The same answer in parts that share the state's cached bytes (wire_list_parts_get), for the
 * node's listener: 200 with `parts` to free, or the refusal's status with its error in
 * `error_out` and nothing to free. */
int requests_list_parts(engine *e, const char *auth, wire_list_parts *parts, buf *error_out);
/* The flags of the list a request of `auth` gets: offline records for the control secret only. */
unsigned requests_list_flags(engine *e, const char *auth);
int requests_control(engine *e, const char *auth, const wire_chunk *body, size_t chunks, buf *out);
/* /happy and /happy/quick: 200, or 503 in the last HAPPY_SHUTDOWN_REFUSAL_SECONDS of a
 * leave (with the payload all the same), or 401 with an error. */
int requests_happy(engine *e, const char *auth, bool quick, buf *out);
/* /metrics, in Prometheus's text format (metrics.c), under HAPPY_SECRET's rules as /happy. */
int requests_metrics(engine *e, const char *auth, buf *out);
/* GET clustershazbot/events?after=N: the change events after N (events_write), for the control
 * secret only (they name offline members). `after`: the query's value, NULL for 0; anything but
 * a decimal number is a 400. Answered in every state: a watcher sees the node leave. */
int requests_events(engine *e, const char *auth, const char *after, buf *out);
/* Reads an `after` value as requests_events does: false when it is not a decimal number. */
bool requests_events_after(const char *after, uint64_t *out);
/* Counts one answer of `status` in the per-second figures. */
void requests_count(engine *e, int status);

#endif
