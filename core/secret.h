/* secret: comparing an Authorization header with a secret, for every place that checks one
 * (the node's endpoints and the master-list store). */
#ifndef SHAZBOT_SECRET_H
#define SHAZBOT_SECRET_H

#include <stdbool.h>

/* Whether `candidate` (NULL when the header is missing) equals `secret`, in constant time in
 * the length of the secret whatever the candidate, so that timing tells nothing of how much of
 * a guess was right (PROTOCOL.md). */
bool secret_matches(const char *candidate, const char *secret);

#endif
