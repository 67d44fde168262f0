//! Finding the WebAssembly spec testsuite for `test-all`, and fetching it
//! on a fresh clone.
//!
//! The tests (`crates/wast/tests/spec.rs`) read the suite in the layout of
//! `../shared/testsuite`: `core/` with the Wasm 2.0 scripts and
//! `proposals/<name>/` with the proposal scripts, from `$KILN_TESTSUITE`
//! or from `<workspace>/../shared/testsuite`. When neither exists and
//! `git` works, `test-all` builds that layout under
//! `target/testsuite/` from the upstream repository, at the pinned
//! commits (the same ones `../shared/testsuite/README.md` records):
//!
//! - `core/`: the `.wast` files at the root of commit [`CORE_COMMIT`], the
//!   last whose root is the Wasm 2.0 suite;
//! - `proposals/{tail-call,extended-const,multi-memory}/`: those folders
//!   at [`PROPOSALS_COMMIT`], the last commit that has them.
//!
//! Each commit is fetched alone with `--depth 1` into a bare repository
//! under `target/testsuite-git`, so a refetch costs only what changed.
//! A complete fetch leaves a `.complete` file holding both commits; a
//! layout without it (an interrupted fetch) is rebuilt.

use crate::Failure;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The upstream repository.
const REPOSITORY: &str = "https://github.com/WebAssembly/testsuite";
/// The commit of the core scripts (Wasm 2.0).
const CORE_COMMIT: &str = "a8101597d3c3c660086c3cd1eedee608ff18d3c3";
/// The commit of the proposal folders the tests use.
const PROPOSALS_COMMIT: &str = "88e97b0f742f4c3ee01fea683da130f344dd7b02";
/// The proposal folders the tests read.
const PROPOSALS: [&str; 3] = ["tail-call", "extended-const", "multi-memory"];

/// The `KILN_TESTSUITE` value the tests should get: `None` when they find
/// the suite themselves (`$KILN_TESTSUITE` is set, or `../shared/testsuite`
/// exists), otherwise the fetched copy under `target/`.
pub(crate) fn ensure(root: &Path, target: &Path) -> Result<Option<PathBuf>, Failure> {
    if let Some(dir) = std::env::var_os("KILN_TESTSUITE") {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(Failure::Failed(format!(
                "KILN_TESTSUITE={} is not a directory",
                dir.display()
            )));
        }
        return Ok(None);
    }
    if root.join("../shared/testsuite/core").is_dir() {
        return Ok(None);
    }
    let dest = target.join("testsuite");
    let stamp = format!("{CORE_COMMIT}\n{PROPOSALS_COMMIT}\n");
    if fs::read_to_string(dest.join(".complete")).is_ok_and(|s| s == stamp) {
        println!("    spec testsuite: {} (fetched earlier)", dest.display());
        return Ok(Some(dest));
    }
    if !Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Err(Failure::Failed(format!(
            "the spec testsuite is not at ../shared/testsuite and KILN_TESTSUITE is not set, \
             and git is not available to fetch it; clone {REPOSITORY} at {CORE_COMMIT} and \
             set KILN_TESTSUITE (see README.md)"
        )));
    }
    println!(
        "    spec testsuite: fetching {REPOSITORY} at {} and {} into {}",
        &CORE_COMMIT[..8],
        &PROPOSALS_COMMIT[..8],
        dest.display()
    );
    fetch(target, &dest, REPOSITORY, CORE_COMMIT, PROPOSALS_COMMIT).map_err(|e| {
        Failure::Failed(format!(
            "fetching the spec testsuite failed: {e}\n       \
             without a network, clone {REPOSITORY} at {CORE_COMMIT} elsewhere and set \
             KILN_TESTSUITE (see README.md)"
        ))
    })?;
    fs::write(dest.join(".complete"), stamp).map_err(|e| Failure::Failed(e.to_string()))?;
    Ok(Some(dest))
}

/// Builds the layout in `dest` from `repository` at `core_commit` (root
/// `.wast` files) and `proposals_commit` (the [`PROPOSALS`] folders).
fn fetch(
    target: &Path,
    dest: &Path,
    repository: &str,
    core_commit: &str,
    proposals_commit: &str,
) -> Result<(), String> {
    let git_dir = target.join("testsuite-git");
    if !git_dir.join("HEAD").is_file() {
        fs::create_dir_all(&git_dir).map_err(|e| format!("{}: {e}", git_dir.display()))?;
        git(&git_dir, &["init", "--bare", "--quiet"])?;
    }
    for commit in [core_commit, proposals_commit] {
        git(
            &git_dir,
            &["fetch", "--quiet", "--depth", "1", repository, commit],
        )?;
    }
    let _ = fs::remove_dir_all(dest);
    let core = dest.join("core");
    fs::create_dir_all(&core).map_err(|e| format!("{}: {e}", core.display()))?;
    // The root's `.wast` files are the core suite.
    let listing = git(&git_dir, &["ls-tree", "--name-only", core_commit])?;
    let files: Vec<&str> = listing.lines().filter(|f| f.ends_with(".wast")).collect();
    if files.is_empty() {
        return Err(format!(
            "commit {core_commit} has no .wast files at its root"
        ));
    }
    for f in files {
        let text = git_bytes(&git_dir, &["show", &format!("{core_commit}:{f}")])?;
        fs::write(core.join(f), text).map_err(|e| format!("{f}: {e}"))?;
    }
    for p in PROPOSALS {
        let dir = dest.join("proposals").join(p);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tree = format!("{proposals_commit}:proposals/{p}");
        let listing = git(&git_dir, &["ls-tree", "--name-only", &tree])?;
        for f in listing.lines().filter(|f| f.ends_with(".wast")) {
            let text = git_bytes(&git_dir, &["show", &format!("{tree}/{f}")])?;
            fs::write(dir.join(f), text).map_err(|e| format!("{p}/{f}: {e}"))?;
        }
    }
    Ok(())
}

/// Runs git in `git_dir` and returns its standard output as text.
fn git(git_dir: &Path, args: &[&str]) -> Result<String, String> {
    String::from_utf8(git_bytes(git_dir, args)?)
        .map_err(|_| format!("git {}: output is not UTF-8", args.join(" ")))
}

/// Runs git in `git_dir` and returns its standard output.
fn git_bytes(git_dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(args)
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// The layout built from a local repository shaped like upstream: the
    /// core scripts from one commit's root, the proposal folders from
    /// another commit, nothing else.
    #[test]
    fn fetch_builds_the_shared_layout_from_two_commits() {
        let tmp = std::env::temp_dir().join(format!("kiln-xtask-testsuite-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let upstream = tmp.join("upstream");
        fs::create_dir_all(upstream.join("proposals/tail-call")).unwrap();
        sh(&upstream, &["init", "--quiet"]);
        sh(
            &upstream,
            &["config", "uploadpack.allowAnySHA1InWant", "true"],
        );
        fs::write(upstream.join("i32.wast"), "(module)").unwrap();
        fs::write(upstream.join("README.md"), "not a script").unwrap();
        sh(&upstream, &["add", "-A"]);
        sh(&upstream, &["commit", "--quiet", "-m", "core"]);
        let core = sh(&upstream, &["rev-parse", "HEAD"]);
        fs::write(upstream.join("i32.wast"), "(module) ;; newer").unwrap();
        for p in PROPOSALS {
            fs::create_dir_all(upstream.join("proposals").join(p)).unwrap();
            fs::write(upstream.join("proposals").join(p).join("x.wast"), p).unwrap();
        }
        fs::create_dir_all(upstream.join("proposals/gc")).unwrap();
        fs::write(upstream.join("proposals/gc/y.wast"), "gc").unwrap();
        sh(&upstream, &["add", "-A"]);
        sh(&upstream, &["commit", "--quiet", "-m", "proposals"]);
        let proposals = sh(&upstream, &["rev-parse", "HEAD"]);
        // A commit nobody asked for.
        sh(
            &upstream,
            &["commit", "--quiet", "--allow-empty", "-m", "later"],
        );

        let url = format!("file://{}", upstream.display());
        let dest = tmp.join("target/testsuite");
        fetch(&tmp.join("target"), &dest, &url, &core, &proposals).unwrap();
        assert_eq!(
            fs::read_to_string(dest.join("core/i32.wast")).unwrap(),
            "(module)"
        );
        assert!(!dest.join("core/README.md").exists());
        for p in PROPOSALS {
            assert_eq!(
                fs::read_to_string(dest.join("proposals").join(p).join("x.wast")).unwrap(),
                p
            );
        }
        assert!(!dest.join("proposals/gc").exists());
        // Again, over the earlier result: the same layout.
        fetch(&tmp.join("target"), &dest, &url, &core, &proposals).unwrap();
        assert!(dest.join("core/i32.wast").is_file());
        // A commit that does not exist is an error, not a partial layout
        // marked complete.
        let e = fetch(
            &tmp.join("target"),
            &dest,
            &url,
            &"0".repeat(40),
            &proposals,
        );
        assert!(e.is_err());
        let _ = fs::remove_dir_all(&tmp);
    }
}
