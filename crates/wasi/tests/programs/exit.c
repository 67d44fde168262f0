/* exit.c: exits with the status given as its first argument, after
 * writing to stdout without a newline (the write must still arrive), or
 * aborts (a trap) if the argument is "abort". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    printf("bye");
    if (argc > 1 && strcmp(argv[1], "abort") == 0) {
        fflush(stdout);
        abort();
    }
    exit(argc > 1 ? atoi(argv[1]) : 0);
}
