/* evclock: the real node's clock (driver.h): the system's wall clock, and timers on a
 * libevent loop. */
#ifndef SHAZBOT_EVCLOCK_H
#define SHAZBOT_EVCLOCK_H

#include "driver.h"

struct event_base;
typedef struct evclock evclock;

evclock *evclock_new(struct event_base *base); /* NULL when out of memory */
void evclock_free(evclock *c);
engine_clock evclock_clock(evclock *c);

#endif
