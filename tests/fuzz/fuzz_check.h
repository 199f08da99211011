/* fuzz_check.h: what the credential fuzz targets share. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdlib.h>

/* A broken invariant is a crash, so libFuzzer keeps the input. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#define MAX_TIME 253402300799 /* 9999-12-31T23:59:59Z */

#endif
