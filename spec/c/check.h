/* check: the C unit tests' assertions. Each failed check prints file:line, what was checked
 * and, for comparisons, what was found; the run goes on, so that one run shows every failure,
 * and check_finish() prints "<name>: N checks, M failed" and gives the exit status (non-zero
 * on any failure).
 *
 *   CHECK(cond)                    a condition
 *   CHECK_EQ_INT(got, want)        two integers (any integer type, compared as long long)
 *   CHECK_INT(got, want)           the same, shorter
 *   CHECK_STR(got, want)           two C strings equal (NULL only equals NULL)
 *   CHECK_CONTAINS(text, part)     `part` occurs in `text`
 *   CHECK_NOT_CONTAINS(text, part) `part` does not occur in `text` (NULL text passes)
 *
 * Every macro evaluates its arguments once and is one statement. */
#ifndef SHAZBOT_CHECK_H
#define SHAZBOT_CHECK_H

#include <stdio.h>
#include <string.h>

static int checks_run, checks_failed;

static inline int check_that(int ok, const char *file, int line, const char *what) {
    checks_run++;
    if (!ok) {
        checks_failed++;
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    }
    return ok;
}

#define CHECK(cond) ((void)check_that((cond) != 0, __FILE__, __LINE__, #cond))

#define CHECK_EQ_INT(got, want)                                                                \
    do {                                                                                       \
        long long check_got_ = (long long)(got), check_want_ = (long long)(want);              \
        if (!check_that(check_got_ == check_want_, __FILE__, __LINE__, #got " == " #want))     \
            fprintf(stderr, "    got %lld, want %lld\n", check_got_, check_want_);             \
    } while (0)
#define CHECK_INT(got, want) CHECK_EQ_INT(got, want)

#define CHECK_STR(got, want)                                                                   \
    do {                                                                                       \
        const char *check_got_ = (got), *check_want_ = (want);                                 \
        int check_ok_ = check_got_ && check_want_ ? strcmp(check_got_, check_want_) == 0       \
                                                  : check_got_ == check_want_;                 \
        if (!check_that(check_ok_, __FILE__, __LINE__, #got " equals " #want))                 \
            fprintf(stderr, "    got  \"%s\"\n    want \"%s\"\n",                              \
                    check_got_ ? check_got_ : "(null)", check_want_ ? check_want_ : "(null)"); \
    } while (0)

#define CHECK_CONTAINS(text, part)                                                             \
    do {                                                                                       \
        const char *check_text_ = (text), *check_part_ = (part);                               \
        if (!check_that(check_text_ && strstr(check_text_, check_part_) != NULL, __FILE__,     \
                        __LINE__, #text " contains " #part))                                   \
            fprintf(stderr, "    got \"%s\"\n    missing \"%s\"\n",                            \
                    check_text_ ? check_text_ : "(null)", check_part_);                        \
    } while (0)

#define CHECK_NOT_CONTAINS(text, part)                                                         \
    do {                                                                                       \
        const char *check_text_ = (text), *check_part_ = (part);                               \
        if (!check_that(!check_text_ || strstr(check_text_, check_part_) == NULL, __FILE__,    \
                        __LINE__, #text " does not contain " #part))                           \
            fprintf(stderr, "    got \"%s\"\n", check_text_);                                  \
    } while (0)

static inline int check_finish(const char *name) {
    printf("%s: %d checks, %d failed\n", name, checks_run, checks_failed);
    fflush(stdout);
    return checks_failed ? 1 : 0;
}

#endif
