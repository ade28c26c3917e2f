/* log: one line per event on stderr, with a level. Each line is weighed against the level of
 * the node that writes it (its SHAZBOT_LOG_LEVEL), so several nodes in one process each keep
 * their own. */
#ifndef SHAZBOT_LOG_H
#define SHAZBOT_LOG_H

#include "config.h"

/* Writes the line if `level` is within `limit` (the writer's configured level). */
void log_write(log_level limit, log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(limit, ...) log_write((limit), LOG_ERROR, __VA_ARGS__)
#define log_warn(limit, ...) log_write((limit), LOG_WARN, __VA_ARGS__)
#define log_info(limit, ...) log_write((limit), LOG_INFO, __VA_ARGS__)
#define log_debug(limit, ...) log_write((limit), LOG_DEBUG, __VA_ARGS__)

#endif
