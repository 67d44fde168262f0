/* swap.c: opens "swap/data" beneath fd 3 over and over while the host
 * swaps the symlink "swap" between a directory inside the sandbox and one
 * outside. Prints how often each outcome happened; "leaked" must stay 0. */
#include "raw.h"

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 2000;
    int inside = 0, refused = 0, leaked = 0, other = 0;
    for (int i = 0; i < rounds; i++) {
        char buf[64];
        int32_t e = open_read(3, "swap/data", FOLLOW, buf);
        if (e == 0 && strcmp(buf, "inside") == 0) inside++;
        else if (e == 0) leaked++;
        else if (e == 63 /* EPERM */ || e == 44 /* ENOENT, mid-swap */) refused++;
        else other++;
    }
    printf("inside=%d refused=%d leaked=%d other=%d\n", inside, refused, leaked, other);
    return leaked ? 1 : 0;
}
