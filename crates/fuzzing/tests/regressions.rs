//! Every file of `fuzz/regressions/<target>/` through its target's logic,
//! one test each, without libFuzzer (see `kiln_fuzzing::regressions`).
//!
//! A known failure runs in a child process (this binary, with
//! `--run-one <target> <file>`), because the fault it reproduces may take
//! the process down; it must fail there, and the test fails when it passes.

use kiln_fuzzing::{regressions, Target};
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::Path;
use std::process::Command;

/// Pseudo-random inputs per target in the smoke tests.
const SMOKE_INPUTS: usize = 16;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, target, file] = &args[..] {
        if flag == "--run-one" {
            let target = Target::from_name(target).expect("a target name");
            target.run(&std::fs::read(file).expect("reading the input"));
            return;
        }
    }
    let (inputs, problems) = regressions::inputs(&regressions::dir());
    let mut trials: Vec<Trial> = inputs
        .into_iter()
        .map(|input| {
            let name = input.name.clone();
            Trial::test(name, move || match &input.known_failure {
                None => {
                    regressions::run(&input);
                    Ok(())
                }
                Some(reason) => expect_failure(&input.target, &input.path, reason),
            })
        })
        .collect();
    // A few pseudo-random inputs per target: the targets themselves work
    // (they generate modules, and both engines agree on them).
    for target in Target::ALL {
        trials.push(Trial::test(format!("smoke/{}", target.name()), move || {
            let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ target.name().len() as u64;
            for _ in 0..SMOKE_INPUTS {
                let data: Vec<u8> = (0..4096)
                    .map(|_| {
                        // xorshift64*
                        state ^= state >> 12;
                        state ^= state << 25;
                        state ^= state >> 27;
                        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
                    })
                    .collect();
                target.run(&data);
            }
            Ok(())
        }));
    }
    trials.push(Trial::test("known_failures.txt is consistent", move || {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n").into())
        }
    }));
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}

fn expect_failure(target: &Target, path: &Path, reason: &str) -> Result<(), Failed> {
    let status = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["--run-one", target.name()])
        .arg(path)
        .output()
        .map_err(|e| format!("running the child: {e}"))?;
    if status.status.success() {
        Err(format!(
            "{} passes now: remove it from fuzz/regressions/known_failures.txt ({reason})",
            path.display()
        )
        .into())
    } else {
        Ok(())
    }
}
