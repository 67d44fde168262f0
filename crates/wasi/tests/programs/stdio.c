/* stdio.c: copies stdin to stdout upper-cased, counts the bytes on
 * stderr, then exits with status 3 if stdin was empty, 0 otherwise. */
#include <ctype.h>
#include <stdio.h>

int main(void) {
    long n = 0;
    int c;
    while ((c = getchar()) != EOF) {
        putchar(toupper(c));
        n++;
    }
    fprintf(stderr, "read %ld bytes\n", n);
    return n ? 0 : 3;
}
