// wasi/file-write-read-64MiB: writes 64 MiB to /sandbox/data.bin in 4 KiB
// write() calls (one fd_write each), then reads it back in 4 KiB read()
// calls (one fd_read each). The guest does next to no work of its own, so
// the time is WASI's and the kernel's: the chunk's number is stamped into
// its first 4 bytes of a fixed pseudo-random buffer, and reading checks
// the stamp and the buffer's last word. Prints the number of bytes read
// plus a checksum of the stamps; exits 1 on any mismatch or I/O error.
// Built at bench time: clang --target=wasm32-wasi -O2 (Debian's wasi-libc).
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CHUNK 4096
#define TOTAL (64u << 20)

static unsigned char buf[CHUNK];

int main(void) {
    uint32_t x = 0x2545f491;
    for (int i = 0; i < CHUNK; i += 4) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        memcpy(buf + i, &x, 4);
    }
    uint32_t last;
    memcpy(&last, buf + CHUNK - 4, 4);

    int fd = open("/sandbox/data.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open for writing"); return 1; }
    for (uint32_t c = 0; c < TOTAL / CHUNK; c++) {
        memcpy(buf, &c, 4);
        if (write(fd, buf, CHUNK) != CHUNK) { perror("write"); return 1; }
    }
    if (close(fd) != 0) { perror("close"); return 1; }

    memset(buf, 0, CHUNK);
    fd = open("/sandbox/data.bin", O_RDONLY);
    if (fd < 0) { perror("open for reading"); return 1; }
    uint64_t total = 0, sum = 0;
    for (uint32_t c = 0;; c++) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0) { perror("read"); return 1; }
        if (n == 0) break;
        if (n != CHUNK) { fprintf(stderr, "short read: %zd\n", n); return 1; }
        uint32_t stamp, end;
        memcpy(&stamp, buf, 4);
        memcpy(&end, buf + CHUNK - 4, 4);
        if (stamp != c || end != last) { fprintf(stderr, "chunk %u differs\n", c); return 1; }
        total += (uint64_t)n;
        sum += stamp;
    }
    close(fd);
    if (total != TOTAL) { fprintf(stderr, "read %llu bytes\n", (unsigned long long)total); return 1; }
    printf("%llu\n", (unsigned long long)(total + sum));
    return 0;
}
