/* readdir.c: lists the preopen "/many" and prints the number of entries
 * other than "." and "..", and the sum of the numbers in their names
 * ("f<N>"), so the harness can check each was listed exactly once. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    DIR *d = opendir("/many");
    if (!d) { perror("opendir"); return 1; }
    long count = 0, sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        count++;
        sum += atol(e->d_name + 1);
    }
    closedir(d);
    printf("count=%ld sum=%ld\n", count, sum);
    return 0;
}
