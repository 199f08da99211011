/* px_main.c: the sigv4d entry point (temporary: config only). */
#include <stdio.h>

#include "px_config.h"

int main(int argc, char **argv)
{
    struct px_config cfg;
    char err[512];
    if (!px_config_parse(&cfg, argc, argv, err, sizeof(err))) {
        fprintf(stderr, "sigv4d: %s\n", err);
        px_config_cleanup(&cfg);
        return 2;
    }
    px_config_cleanup(&cfg);
    return 0;
}
