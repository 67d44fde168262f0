// wasi/readdir-10k: lists /sandbox (10,000 files named f0 .. f9999) with
// readdir() (fd_readdir underneath) and prints the number of entries
// other than "." and ".." times 100,000,000 plus the sum of the numbers
// in their names, so every entry is counted exactly once.
// Built at bench time: clang --target=wasm32-wasi -O2 (Debian's wasi-libc).
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    DIR *d = opendir("/sandbox");
    if (!d) { perror("opendir"); return 1; }
    long long count = 0, sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        count++;
        sum += atol(e->d_name + 1);
    }
    closedir(d);
    printf("%lld\n", count * 100000000LL + sum);
    return 0;
}
