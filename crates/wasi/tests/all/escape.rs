//! Every way out of the sandbox the issue lists, tried by a guest with
//! raw WASI calls (`escape.c`, `swap.c`); each must be refused with the
//! errno Wasmtime gives, and the host checks that nothing outside changed.

use crate::{run, scratch};
use kiln_wasi::{DirPerms, FilePerms};
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;

const PERM: i32 = 63;
const LOOP: i32 = 32;
const NOTDIR: i32 = 54;
const BADF: i32 = 8;
const INVAL: i32 = 28;
const FAULT: i32 = 21;
const NAMETOOLONG: i32 = 37;

fn listing(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn every_escape_is_refused() {
    let root = scratch("escape");
    let (sb, ro, outside) = (root.join("sb"), root.join("ro"), root.join("outside"));
    for d in [&sb, &ro, &outside, &sb.join("inside")] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(outside.join("secret"), "SECRET").unwrap();
    std::fs::write(sb.join("file.txt"), "inside file").unwrap();
    std::fs::write(sb.join("inside/data"), "inside").unwrap();
    std::fs::write(ro.join("ro.txt"), "read only").unwrap();
    symlink(outside.join("secret"), sb.join("sym_abs")).unwrap();
    symlink("../outside/secret", sb.join("sym_rel")).unwrap();
    symlink("sym_chain2", sb.join("sym_chain1")).unwrap();
    symlink("../outside/secret", sb.join("sym_chain2")).unwrap();
    symlink("sym_chain_dir2", sb.join("sym_chain_dir")).unwrap();
    symlink("../outside", sb.join("sym_chain_dir2")).unwrap();
    symlink("sym_loop2", sb.join("sym_loop1")).unwrap();
    symlink("sym_loop1", sb.join("sym_loop2")).unwrap();
    symlink("inside/data", sb.join("sym_inside")).unwrap();
    symlink(&outside, sb.join("sym_outdir")).unwrap();
    let outside_before = listing(&outside);
    let ro_before = listing(&ro);

    let o = run("escape", &[], b"", |b| {
        b.preopened_dir(&sb, "sb", DirPerms::all(), FilePerms::all())
            .unwrap()
            .preopened_dir(&ro, "ro", DirPerms::READ, FilePerms::READ)
            .unwrap();
    });
    assert_eq!(o.status, Some(0), "{o:?}");
    let got: BTreeMap<&str, &str> = o.stdout.lines().filter_map(|l| l.split_once('=')).collect();
    let errno = |k: &str| -> i32 {
        got.get(k)
            .unwrap_or_else(|| panic!("{k} not reported:\n{}", o.stdout))
            .parse()
            .unwrap()
    };
    for (k, want) in [
        ("dotdot", PERM),
        ("dotdot_chain", PERM),
        ("dotdot_deep", PERM),
        ("absolute", PERM),
        ("inside_ok", 0),
        ("sym_abs", PERM),
        ("sym_abs_nofollow", LOOP),
        ("sym_rel", PERM),
        ("sym_chain", PERM),
        ("sym_dir_chain", PERM),
        ("sym_loop", LOOP),
        ("sym_inside_ok", 0),
        ("trailing_slash_file", NOTDIR),
        ("trailing_slash_symdir", PERM),
        ("trailing_slash_symdir_file", PERM),
        ("trailing_slash_dotdot", PERM),
        ("link_out", PERM),
        ("link_follow_sym", INVAL),
        ("link_into_ro", PERM),
        ("link_from_ro", PERM),
        ("rename_out", PERM),
        ("rename_abs", PERM),
        ("rename_into_ro", PERM),
        ("rename_from_ro", PERM),
        ("symlink_out", PERM),
        ("symlink_abs", PERM),
        ("unlink_out", PERM),
        ("mkdir_out", PERM),
        ("rmdir_out", PERM),
        ("stat_out", PERM),
        ("stat_dotdot", PERM),
        ("ro_trunc", PERM),
        ("ro_trunc_readonly_rights", PERM),
        ("ro_creat", PERM),
        ("ro_creat_excl", PERM),
        ("ro_write", PERM),
        ("ro_unlink", PERM),
        ("ro_mkdir", PERM),
        ("ro_read", 0),
        ("ro_ftruncate", BADF),
        ("ro_fd_write", BADF),
        ("read_unknown_fd", BADF),
        ("read_fd_minus1", BADF),
        ("renumber_unknown", BADF),
        ("open_on_stdout", NOTDIR),
        ("read_huge_len", FAULT),
        ("write_huge_len", FAULT),
        ("open_huge_len", NAMETOOLONG),
        ("iovs_out_of_memory", FAULT),
    ] {
        assert_eq!(errno(k), want, "{k}\n{}", o.stdout);
    }
    // A hard link of a symlink (not followed) is a symlink inside the
    // sandbox, and following it is still refused.
    assert_ne!(errno("link_sym_out_use"), 0);
    assert_ne!(errno("symlink_out_use"), 0);
    assert_eq!(got["inside_ok.content"], "inside file");
    assert_eq!(got["sym_inside_ok.content"], "inside");
    assert!(!o.stdout.contains("SECRET"), "{}", o.stdout);
    assert!(!o.stdout.contains("root:"), "{}", o.stdout);
    // Nothing outside the read-write preopen changed.
    assert_eq!(listing(&outside), outside_before);
    assert_eq!(
        std::fs::read_to_string(outside.join("secret")).unwrap(),
        "SECRET"
    );
    assert_eq!(listing(&ro), ro_before);
    assert_eq!(
        std::fs::read_to_string(ro.join("ro.txt")).unwrap(),
        "read only"
    );
    assert_eq!(
        std::fs::read_to_string(sb.join("file.txt")).unwrap(),
        "inside file"
    );
    assert!(!root.join("moved").exists() && !Path::new("/tmp/moved").exists());
}

#[test]
fn a_symlink_swapped_between_check_and_use_never_leads_out() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let root = scratch("swap");
    let (sb, outside) = (root.join("sb"), root.join("outside"));
    std::fs::create_dir_all(sb.join("inside")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(sb.join("inside/data"), "inside").unwrap();
    std::fs::write(outside.join("data"), "SECRET").unwrap();
    symlink("inside", sb.join("swap")).unwrap();
    let stop = AtomicBool::new(false);
    let swaps = AtomicU64::new(0);
    let o = std::thread::scope(|s| {
        s.spawn(|| {
            // Atomically replace `swap` with a link in, then a link out
            // (absolute and relative alternately).
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let tmp = sb.join(".swap.tmp");
                let _ = std::fs::remove_file(&tmp);
                match i % 4 {
                    0 => symlink(&outside, &tmp).unwrap(),
                    2 => symlink("../outside", &tmp).unwrap(),
                    _ => symlink("inside", &tmp).unwrap(),
                }
                std::fs::rename(&tmp, sb.join("swap")).unwrap();
                i += 1;
                swaps.store(i, Ordering::Relaxed);
            }
        });
        let o = run("swap", &["3000"], b"", |b| {
            b.preopened_dir(&sb, "sb", DirPerms::all(), FilePerms::all())
                .unwrap();
        });
        stop.store(true, Ordering::Relaxed);
        o
    });
    assert_eq!(o.status, Some(0), "{o:?}");
    assert!(o.stdout.contains(" leaked=0 "), "{}", o.stdout);
    assert!(o.stdout.contains(" other=0"), "{}", o.stdout);
    assert!(
        swaps.load(Ordering::Relaxed) > 10,
        "the host swapped the link"
    );
}
