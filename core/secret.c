/* secret: see secret.h. */
#include "secret.h"

#include <string.h>

bool secret_matches(const char *candidate, const char *secret) {
    if (!candidate) return false;
    size_t n = strlen(secret), m = strlen(candidate);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)secret[i] ^ (unsigned char)(i < m ? candidate[i] : 0);
    return diff == 0;
}
