/* clocks.c: prints the wall and monotonic clocks, their resolutions, 16
 * random bytes, whether the CPU clocks run, and how long a 20 ms
 * nanosleep (a poll_oneoff clock subscription) took by the monotonic
 * clock. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec t, r;
    clock_gettime(CLOCK_REALTIME, &t);
    printf("realtime=%lld.%09ld\n", (long long)t.tv_sec, t.tv_nsec);
    clock_getres(CLOCK_REALTIME, &r);
    printf("realtime_res=%ld\n", r.tv_nsec);
    clock_gettime(CLOCK_MONOTONIC, &t);
    printf("monotonic=%lld.%09ld\n", (long long)t.tv_sec, t.tv_nsec);
    clock_getres(CLOCK_MONOTONIC, &r);
    printf("monotonic_res=%ld\n", r.tv_nsec);
    unsigned char rnd[16];
    getentropy(rnd, sizeof rnd);
    printf("random=");
    for (int i = 0; i < 16; i++) printf("%02x", rnd[i]);
    printf("\n");
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < 20000000; i++) x += i;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    printf("loop_parity=%lu\n", x & 1);
    printf("cputime_advances=%d\n", (c1.tv_sec - c0.tv_sec) * 1000000000L + (c1.tv_nsec - c0.tv_nsec) > 0);
    struct timespec a, b, s = {0, 20 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &a);
    nanosleep(&s, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    printf("slept_ms=%ld\n", ms);
    return 0;
}
