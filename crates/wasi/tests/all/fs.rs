//! Files and directories inside a preopen: the C program `files.c` checks
//! each operation itself; listing a large directory.

use crate::{run, scratch};
use kiln_wasi::{DirPerms, FilePerms};

#[test]
fn file_and_directory_operations() {
    let dir = scratch("files");
    let o = run("files", &[], b"", |b| {
        b.preopened_dir(&dir, "/sb", DirPerms::all(), FilePerms::all())
            .unwrap();
    });
    assert_eq!(
        o.status,
        Some(0),
        "{}{}",
        o.stdout,
        o.error.unwrap_or_default()
    );
    assert!(!o.stdout.contains("FAIL"), "{}", o.stdout);
    assert!(o.stdout.lines().count() > 50, "{}", o.stdout);
    // What the guest did is there on the host.
    assert_eq!(
        std::fs::read_to_string(dir.join("log.txt")).unwrap(),
        "one\ntwo\n"
    );
    let meta = std::fs::metadata(dir.join("hard.txt")).unwrap();
    assert_eq!(meta.len(), 4096);
}

#[test]
fn readdir_lists_many_entries_exactly_once() {
    let dir = scratch("many");
    let n = 3000u64;
    for i in 0..n {
        std::fs::write(dir.join(format!("f{i}")), "").unwrap();
    }
    let o = run("readdir", &[], b"", |b| {
        b.preopened_dir(&dir, "/many", DirPerms::READ, FilePerms::READ)
            .unwrap();
    });
    assert_eq!(o.status, Some(0), "{o:?}");
    assert_eq!(o.stdout, format!("count={n} sum={}\n", n * (n - 1) / 2));
}

#[test]
fn renumber_close_of_stdio_and_preopens() {
    let dir = scratch("stdio-close");
    let o = run("stdio_close", &[], b"", |b| {
        b.preopened_dir(&dir, "/sb", DirPerms::all(), FilePerms::all())
            .unwrap();
    });
    assert_eq!(o.status, Some(0), "{o:?}");
    assert_eq!(o.stdout, "", "stdout was renumbered away");
    assert_eq!(
        std::fs::read_to_string(dir.join("out.txt")).unwrap(),
        "into the file\n"
    );
}
