/* poll.c: poll_oneoff on stdin and a clock. Waits up to the timeout given
 * (ms, argv[1]) for stdin to be readable; prints "ready" and what it read,
 * or "timeout". Then a poll with only a 10 ms clock must report the clock. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <wasi/api.h>

int main(int argc, char **argv) {
    int ms = argc > 1 ? atoi(argv[1]) : 100;
    struct pollfd p = {.fd = 0, .events = POLLIN};
    int n = poll(&p, 1, ms);
    if (n == 1 && (p.revents & (POLLIN | POLLHUP))) {
        char buf[64];
        ssize_t got = read(0, buf, sizeof buf - 1);
        buf[got < 0 ? 0 : got] = 0;
        printf("ready read=%s\n", buf);
    } else if (n == 0) {
        printf("timeout\n");
    } else {
        printf("error n=%d revents=%d\n", n, p.revents);
    }
    __wasi_subscription_t sub = {
        .userdata = 42,
        .u = {.tag = __WASI_EVENTTYPE_CLOCK,
              .u = {.clock = {.id = __WASI_CLOCKID_MONOTONIC, .timeout = 10000000}}},
    };
    __wasi_event_t ev;
    __wasi_size_t nev = 0;
    __wasi_errno_t e = __wasi_poll_oneoff(&sub, &ev, 1, &nev);
    printf("clock errno=%d nevents=%d userdata=%d type=%d\n", e, (int)nev, (int)ev.userdata, ev.type);
    e = __wasi_poll_oneoff(&sub, &ev, 0, &nev);
    printf("empty errno=%d\n", e);
    return 0;
}
