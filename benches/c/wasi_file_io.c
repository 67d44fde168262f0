// wasi/file-io-64MiB: writes 64 MiB to /sandbox/data.bin in 4 KiB
// write() calls (one fd_write each), then reads it back in 4 KiB read()
// calls (one fd_read each) and checks every chunk. Prints the number of
// bytes read and a checksum; exits 1 on any mismatch or I/O error.
// Built at bench time: clang --target=wasm32-wasi -O2 (Debian's wasi-libc).
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CHUNK 4096
#define TOTAL (64u << 20)

static unsigned char buf[CHUNK];
static unsigned char want[CHUNK];

static void fill(unsigned char *b, uint32_t chunk) {
    uint32_t x = chunk * 2654435761u + 1;
    for (int i = 0; i < CHUNK; i += 4) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        memcpy(b + i, &x, 4);
    }
}

int main(void) {
    int fd = open("/sandbox/data.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open for writing"); return 1; }
    for (uint32_t c = 0; c < TOTAL / CHUNK; c++) {
        fill(buf, c);
        if (write(fd, buf, CHUNK) != CHUNK) { perror("write"); return 1; }
    }
    if (close(fd) != 0) { perror("close"); return 1; }

    fd = open("/sandbox/data.bin", O_RDONLY);
    if (fd < 0) { perror("open for reading"); return 1; }
    uint64_t total = 0, sum = 0;
    for (uint32_t c = 0;; c++) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0) { perror("read"); return 1; }
        if (n == 0) break;
        if (n != CHUNK) { fprintf(stderr, "short read: %zd\n", n); return 1; }
        fill(want, c);
        if (memcmp(buf, want, CHUNK) != 0) { fprintf(stderr, "chunk %u differs\n", c); return 1; }
        total += (uint64_t)n;
        sum += buf[c % CHUNK];
    }
    close(fd);
    if (total != TOTAL) { fprintf(stderr, "read %llu bytes\n", (unsigned long long)total); return 1; }
    printf("%llu\n", (unsigned long long)(total + sum));
    return 0;
}
