/* vclock: virtual time (driver.h's clock), for the simulator and the engine's unit tests.
 * Nothing waits: time jumps from one due event to the next, so an hour of a cluster takes as
 * long as its events take to run. Events due at the same time run in the order they were
 * scheduled, which makes every run repeatable. */
#ifndef SHAZBOT_VCLOCK_H
#define SHAZBOT_VCLOCK_H

#include "driver.h"

typedef struct vclock vclock;

/* Time starts at `start_ms` (wall-clock milliseconds, as lastUpdate values are). */
vclock *vclock_new(int64_t start_ms);
/* Timers still armed are dropped; engine timers must have been freed before. */
void vclock_free(vclock *c);
engine_clock vclock_clock(vclock *c);

int64_t vclock_now_ms(const vclock *c);
int64_t vclock_now_us(const vclock *c);

/* Runs fn(arg) once, `seconds` from now. False when out of memory. */
bool vclock_after(vclock *c, double seconds, void (*fn)(void *), void *arg);

/* Runs the next event if it is due at or before `until_us`, moving time to it; false when
 * there is none (time then moves to `until_us`). */
bool vclock_step(vclock *c, int64_t until_us);
/* Runs every event due at or before `until_us`. */
void vclock_run_until(vclock *c, int64_t until_us);

#endif
