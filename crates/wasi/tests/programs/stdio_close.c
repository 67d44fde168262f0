/* stdio_close.c: descriptor-table behaviour Wasmtime's users rely on.
 * Opens /sb/out.txt, renumbers it over stdout, so printf lands in the file;
 * closes stderr and checks writes to it fail with EBADF; closes the
 * preopen and checks it is gone. Exits 0 if every check held. */
#include "raw.h"
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    int bad = 0;
    int fd = open("/sb/out.txt", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) return 10;
    if (raw_fd_renumber(fd, 1) != 0) return 11;
    if (raw_fd_close(fd) != 8 /* EBADF: moved */) bad |= 1;
    printf("into the file\n");
    fflush(stdout);
    if (raw_fd_close(2) != 0) bad |= 2;
    struct { const void *b; int32_t l; } iov = { "x", 1 };
    int32_t n;
    if (raw_fd_write(2, &iov, 1, &n) != 8) bad |= 4;
    /* Closing the preopen (fd 3): it is gone for good, and its number is
     * reused by the next open, which cannot reach the directory. */
    char pre[8];
    if (raw_fd_prestat_get(3, pre) != 0) bad |= 8;
    if (raw_fd_close(3) != 0) bad |= 16;
    if (raw_fd_prestat_get(3, pre) != 8) bad |= 32;
    int32_t nfd;
    if (raw_path_open(3, 0, "out.txt", 7, 0, R_READ, 0, 0, &nfd) != 8) bad |= 64;
    return bad;
}
