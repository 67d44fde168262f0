/* raw.h: the WASI preview1 imports with every pointer and length explicit,
 * so sandbox tests can pass exactly what a hostile guest would (paths that
 * libc would rewrite, lengths no libc would send). Each returns the errno. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#define WASI(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))

WASI(path_open) int32_t raw_path_open(int32_t fd, int32_t dirflags, const char *path, int32_t len,
                                      int32_t oflags, int64_t base, int64_t inh, int32_t fdflags,
                                      int32_t *out);
WASI(path_link) int32_t raw_path_link(int32_t ofd, int32_t oflags, const char *op, int32_t ol,
                                      int32_t nfd, const char *np, int32_t nl);
WASI(path_rename) int32_t raw_path_rename(int32_t fd, const char *op, int32_t ol, int32_t nfd,
                                          const char *np, int32_t nl);
WASI(path_symlink) int32_t raw_path_symlink(const char *op, int32_t ol, int32_t fd,
                                            const char *np, int32_t nl);
WASI(path_unlink_file) int32_t raw_path_unlink_file(int32_t fd, const char *p, int32_t l);
WASI(path_create_directory) int32_t raw_path_create_directory(int32_t fd, const char *p, int32_t l);
WASI(path_remove_directory) int32_t raw_path_remove_directory(int32_t fd, const char *p, int32_t l);
WASI(path_filestat_get) int32_t raw_path_filestat_get(int32_t fd, int32_t flags, const char *p,
                                                      int32_t l, void *out);
WASI(path_readlink) int32_t raw_path_readlink(int32_t fd, const char *p, int32_t l, char *buf,
                                              int32_t bl, int32_t *used);
WASI(fd_read) int32_t raw_fd_read(int32_t fd, const void *iovs, int32_t n, int32_t *out);
WASI(fd_write) int32_t raw_fd_write(int32_t fd, const void *iovs, int32_t n, int32_t *out);
WASI(fd_close) int32_t raw_fd_close(int32_t fd);
WASI(fd_renumber) int32_t raw_fd_renumber(int32_t from, int32_t to);
WASI(fd_prestat_get) int32_t raw_fd_prestat_get(int32_t fd, void *out);
WASI(fd_filestat_set_size) int32_t raw_fd_filestat_set_size(int32_t fd, int64_t size);

#define FOLLOW 1
#define O_CREAT_ 1
#define O_DIR_ 2
#define O_EXCL_ 4
#define O_TRUNC_ 8
#define R_READ ((int64_t)1 << 1)
#define R_WRITE ((int64_t)1 << 6)

/* Prints `name=errno` for the harness to compare. */
__attribute__((unused)) static void report(const char *name, int32_t e) { printf("%s=%d\n", name, (int)e); }

/* Opens `path` beneath `fd`; on success reads up to 63 bytes into `content`
 * (NUL-terminated) and closes it. */
__attribute__((unused)) static int32_t open_read(int32_t fd, const char *path, int follow, char *content) {
    int32_t nfd = -1;
    int32_t e = raw_path_open(fd, follow, path, strlen(path), 0, R_READ, 0, 0, &nfd);
    if (content) content[0] = 0;
    if (e) return e;
    if (content) {
        struct { void *buf; int32_t len; } iov = { content, 63 };
        int32_t n = 0;
        e = raw_fd_read(nfd, &iov, 1, &n);
        content[e ? 0 : n] = 0;
    }
    raw_fd_close(nfd);
    return e;
}
