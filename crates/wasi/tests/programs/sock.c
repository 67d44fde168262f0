/* sock.c: serves one connection on the preopened listening socket (fd 3):
 * accepts, receives a message, sends back "PONG:" and the message, shuts
 * down its write side; then tries socket calls on the wrong descriptors.
 * Prints name=errno lines and got=MESSAGE. */
#include "raw.h"

WASI(sock_accept) int32_t raw_sock_accept(int32_t fd, int32_t flags, int32_t *out);
WASI(sock_recv) int32_t raw_sock_recv(int32_t fd, void *iovs, int32_t n, int32_t flags,
                                      int32_t *len, int32_t *oflags);
WASI(sock_send) int32_t raw_sock_send(int32_t fd, const void *iovs, int32_t n, int32_t flags,
                                      int32_t *len);
WASI(sock_shutdown) int32_t raw_sock_shutdown(int32_t fd, int32_t how);

int main(void) {
    int32_t c = -1, n = 0, of = 0;
    report("accept", raw_sock_accept(3, 0, &c));
    char buf[64];
    struct { void *b; int32_t l; } iov = { buf, 63 };
    report("recv_peek", raw_sock_recv(c, &iov, 1, 1 /* PEEK */, &n, &of));
    report("recv", raw_sock_recv(c, &iov, 1, 2 /* WAITALL */ & 0, &n, &of));
    buf[n] = 0;
    printf("got=%s\n", buf);
    char reply[80] = "PONG:";
    strcat(reply, buf);
    struct { const void *b; int32_t l; } out = { reply, (int32_t)strlen(reply) };
    report("send", raw_sock_send(c, &out, 1, 0, &n));
    report("shutdown_wr", raw_sock_shutdown(c, 2));
    report("shutdown_bad_how", raw_sock_shutdown(c, 7));
    report("accept_on_connection", raw_sock_accept(c, 0, &n));
    report("recv_on_listener", raw_sock_recv(3, &iov, 1, 0, &n, &of));
    report("send_on_stdout", raw_sock_send(1, &out, 1, 0, &n));
    report("accept_on_stdin", raw_sock_accept(0, 0, &n));
    report("close", raw_fd_close(c));
    return 0;
}
