//! The regression corpus: every input that ever failed, run as a test.
//!
//! Inputs live in `fuzz/regressions/<target>/`, one file each, named after
//! what broke. An input whose fault is fixed must pass. An input whose
//! fault is known but not fixed yet is listed in
//! `fuzz/regressions/known_failures.txt` as `<target>/<file>  reason`; it
//! must still fail, in a child process (a known fault may crash the
//! process, which a test in this process could not survive), and the test
//! fails once it passes, so that the entry is removed with the fix.

use crate::Target;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The repository's `fuzz/regressions` directory.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions")
}

/// One input of the corpus.
#[derive(Clone, Debug)]
pub struct Input {
    /// Its target.
    pub target: Target,
    /// Its file.
    pub path: PathBuf,
    /// `target/file`, as in the known-failures list.
    pub name: String,
    /// Why it is expected to fail, if it is a known failure.
    pub known_failure: Option<String>,
}

/// Every input of the corpus under `dir`, and the problems with the list
/// of known failures (an entry without a file, or without a reason).
pub fn inputs(dir: &Path) -> (Vec<Input>, Vec<String>) {
    let mut problems = Vec::new();
    let mut known = known_failures(dir, &mut problems);
    let mut out = Vec::new();
    for target in Target::ALL {
        let Ok(entries) = std::fs::read_dir(dir.join(target.name())) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for path in files {
            let file = path
                .file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned();
            let name = format!("{}/{file}", target.name());
            out.push(Input {
                target,
                known_failure: known.remove(&name),
                path,
                name,
            });
        }
    }
    for name in known.keys() {
        problems.push(format!(
            "known_failures.txt lists {name}, which is not in the corpus"
        ));
    }
    (out, problems)
}

fn known_failures(dir: &Path, problems: &mut Vec<String>) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(dir.join("known_failures.txt")) else {
        return BTreeMap::new();
    };
    let mut map = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if reason.trim().is_empty() {
            problems.push(format!("known_failures.txt: {name} has no reason"));
        }
        map.insert(name.to_string(), reason.trim().to_string());
    }
    map
}

/// Runs `input` in this process; panics on a finding.
pub fn run(input: &Input) {
    let data = std::fs::read(&input.path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", input.path.display()));
    input.target.run(&data);
}
