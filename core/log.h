/* log: one line per event on stderr, with a level. The level is process-wide: a host that runs
 * several nodes shares it. */
#ifndef SHAZBOT_LOG_H
#define SHAZBOT_LOG_H

#include "config.h"

void log_set_level(log_level level);
void log_write(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)

#endif
