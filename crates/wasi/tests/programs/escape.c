/* escape.c: tries to leave the sandbox every way the issue lists. Run with
 * fd 3 = a read-write preopen "sb" (containing file.txt, a dir "inside",
 * and symlinks the host planted), fd 4 = a read-only preopen "ro"
 * (containing ro.txt), and a directory "outside" next to sb holding
 * "secret". Each attempt prints name=errno; content read is printed as
 * name.content=... so the harness can check nothing outside leaked. */
#include "raw.h"

static void attempt(const char *name, int32_t fd, const char *path, int follow) {
    char buf[64];
    int32_t e = open_read(fd, path, follow, buf);
    report(name, e);
    if (e == 0) printf("%s.content=%s\n", name, buf);
}

int main(void) {
    attempt("dotdot", 3, "../outside/secret", FOLLOW);
    attempt("dotdot_chain", 3, "inside/../../outside/secret", FOLLOW);
    attempt("dotdot_deep", 3, "inside/../inside/../../../../../../etc/passwd", FOLLOW);
    attempt("absolute", 3, "/etc/passwd", FOLLOW);
    attempt("inside_ok", 3, "inside/../file.txt", FOLLOW);
    attempt("sym_abs", 3, "sym_abs", FOLLOW);
    attempt("sym_abs_nofollow", 3, "sym_abs", 0);
    attempt("sym_rel", 3, "sym_rel", FOLLOW);
    attempt("sym_chain", 3, "sym_chain1", FOLLOW);
    attempt("sym_dir_chain", 3, "sym_chain_dir/secret", FOLLOW);
    attempt("sym_loop", 3, "sym_loop1", FOLLOW);
    attempt("sym_inside_ok", 3, "sym_inside", FOLLOW);
    attempt("trailing_slash_file", 3, "file.txt/", FOLLOW);
    attempt("trailing_slash_symdir", 3, "sym_outdir/", FOLLOW);
    attempt("trailing_slash_symdir_file", 3, "sym_outdir/secret", FOLLOW);
    attempt("trailing_slash_dotdot", 3, "../", FOLLOW);

    /* Links and renames that would put an entry outside, or that lack the
     * permission. */
    report("link_out", raw_path_link(3, 0, "file.txt", 8, 3, "../outside/link", 15));
    report("link_follow_sym", raw_path_link(3, FOLLOW, "sym_abs", 7, 3, "hard", 4));
    report("link_sym_out", raw_path_link(3, 0, "sym_abs", 7, 3, "hard2", 5));
    attempt("link_sym_out_use", 3, "hard2", FOLLOW);
    report("link_into_ro", raw_path_link(3, 0, "file.txt", 8, 4, "hard", 4));
    report("link_from_ro", raw_path_link(4, 0, "ro.txt", 6, 3, "stolen", 6));
    report("rename_out", raw_path_rename(3, "file.txt", 8, 3, "../outside/moved", 16));
    report("rename_abs", raw_path_rename(3, "file.txt", 8, 3, "/tmp/moved", 10));
    report("rename_into_ro", raw_path_rename(3, "file.txt", 8, 4, "moved", 5));
    report("rename_from_ro", raw_path_rename(4, "ro.txt", 6, 3, "moved", 5));
    report("symlink_out", raw_path_symlink("../outside/secret", 17, 3, "mine", 4));
    report("symlink_abs", raw_path_symlink("/etc/passwd", 11, 3, "mine2", 5));
    attempt("symlink_out_use", 3, "mine", FOLLOW);
    report("unlink_out", raw_path_unlink_file(3, "../outside/secret", 17));
    report("mkdir_out", raw_path_create_directory(3, "../outside/d", 12));
    report("rmdir_out", raw_path_remove_directory(3, "../outside", 10));
    {
        char st[64];
        report("stat_out", raw_path_filestat_get(3, FOLLOW, "sym_abs", 7, st));
        report("stat_dotdot", raw_path_filestat_get(3, 0, "..", 2, st));
    }

    /* The read-only preopen: no create, no truncate, no write. */
    int32_t fd = -1;
    report("ro_trunc", raw_path_open(4, 0, "ro.txt", 6, O_TRUNC_, R_READ | R_WRITE, 0, 0, &fd));
    report("ro_trunc_readonly_rights", raw_path_open(4, 0, "ro.txt", 6, O_TRUNC_, R_READ, 0, 0, &fd));
    report("ro_creat", raw_path_open(4, 0, "new.txt", 7, O_CREAT_, R_READ | R_WRITE, 0, 0, &fd));
    report("ro_creat_excl", raw_path_open(4, 0, "new.txt", 7, O_CREAT_ | O_EXCL_, R_READ, 0, 0, &fd));
    report("ro_write", raw_path_open(4, 0, "ro.txt", 6, 0, R_WRITE, 0, 0, &fd));
    report("ro_unlink", raw_path_unlink_file(4, "ro.txt", 6));
    report("ro_mkdir", raw_path_create_directory(4, "d", 1));
    report("ro_read", open_read(4, "ro.txt", 0, NULL));
    fd = -1;
    raw_path_open(4, 0, "ro.txt", 6, 0, R_READ, 0, 0, &fd);
    report("ro_ftruncate", raw_fd_filestat_set_size(fd, 0));
    {
        struct { const void *buf; int32_t len; } iov = { "x", 1 };
        int32_t n;
        report("ro_fd_write", raw_fd_write(fd, &iov, 1, &n));
    }
    raw_fd_close(fd);

    /* Descriptors the guest was never given, and guest lengths. */
    {
        char b[8];
        struct { void *buf; int32_t len; } iov = { b, 8 };
        int32_t n;
        report("read_unknown_fd", raw_fd_read(100, &iov, 1, &n));
        report("read_fd_minus1", raw_fd_read(-1, &iov, 1, &n));
        report("renumber_unknown", raw_fd_renumber(3, 100));
        report("open_on_stdout", raw_path_open(1, 0, "x", 1, 0, R_READ, 0, 0, &fd));
        struct { void *buf; int32_t len; } huge = { b, (int32_t)0xfffffff0 };
        report("read_huge_len", raw_fd_read(0, &huge, 1, &n));
        report("write_huge_len", raw_fd_write(1, &huge, 1, &n));
        report("open_huge_len", raw_path_open(3, 0, "x", 0x7ffffff0, 0, R_READ, 0, 0, &fd));
        report("iovs_out_of_memory", raw_fd_write(1, (void *)0xfffffff0, 4, &n));
    }
    fflush(stdout);
    return 0;
}
