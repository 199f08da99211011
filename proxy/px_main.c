/* px_main.c: the sigv4d entry point. The proxy data path lands with issue 3. */
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: sigv4d [--help] [--version]\n"
          "A SigV4 signing reverse proxy for AWS APIs (the data path is under construction).\n",
          f);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("sigv4d %s\n", SIGV4D_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "sigv4d: unknown flag '%s' (see --help)\n", argv[i]);
        return 2;
    }
    usage(stderr);
    return 2;
}
