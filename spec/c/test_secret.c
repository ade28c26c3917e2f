/* secret_matches: the check every Authorization header goes through. */
#include "check.h"
#include "secret.h"

int main(void) {
    CHECK(secret_matches("s3cret", "s3cret"));
    CHECK(!secret_matches(NULL, "s3cret"));      /* no header */
    CHECK(!secret_matches("", "s3cret"));        /* an empty header */
    CHECK(!secret_matches("s3cre", "s3cret"));   /* a prefix */
    CHECK(!secret_matches("s3cretx", "s3cret")); /* longer, with the secret as its prefix */
    CHECK(!secret_matches("S3CRET", "s3cret"));  /* case matters */
    CHECK(!secret_matches("s3creT", "s3cret"));  /* the last byte */
    CHECK(!secret_matches("x3cret", "s3cret"));  /* the first byte */
    /* Bytes past the ASCII range compare as bytes. */
    CHECK(secret_matches("p\xc3\xa4ss", "p\xc3\xa4ss"));
    CHECK(!secret_matches("p\xc3\xa5ss", "p\xc3\xa4ss"));
    return check_finish("test_secret");
}
