/* check: the C unit tests' assertions. Each failed check prints where and what, the run goes
 * on, and check_finish() reports the count and sets the exit status. */
#ifndef SHAZBOT_CHECK_H
#define SHAZBOT_CHECK_H

#include <stdio.h>
#include <string.h>

static int checks_run, checks_failed;

#define CHECK(cond) check_that((cond) != 0, __FILE__, __LINE__, #cond)
#define CHECK_INT(got, want)                                                                   \
    do {                                                                                       \
        long long got_ = (long long)(got), want_ = (long long)(want);                          \
        if (!check_that(got_ == want_, __FILE__, __LINE__, #got " == " #want))                 \
            fprintf(stderr, "    got %lld, want %lld\n", got_, want_);                         \
    } while (0)
#define CHECK_CONTAINS(text, part)                                                             \
    do {                                                                                       \
        const char *text_ = (text);                                                            \
        if (!check_that(text_ && strstr(text_, (part)) != NULL, __FILE__, __LINE__,            \
                        #text " contains " #part))                                             \
            fprintf(stderr, "    got \"%s\"\n", text_ ? text_ : "(null)");                     \
    } while (0)

static inline int check_that(int ok, const char *file, int line, const char *what) {
    checks_run++;
    if (!ok) {
        checks_failed++;
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    }
    return ok;
}

static inline int check_finish(const char *name) {
    printf("%s: %d checks, %d failed\n", name, checks_run, checks_failed);
    return checks_failed ? 1 : 0;
}

#endif
