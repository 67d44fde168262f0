//! AArch64 `bl` reaches ±128 MiB; past that, and when veneers are forced,
//! calls must go through a veneer that still reaches the intended callee.
//! These tests compile for AArch64 on any host and decode the text.

use crate::compile;
use kiln_cranelift::{CompiledObject, CompilerConfig};
use std::collections::BTreeSet;

/// Function `i` calls functions `(i + 1) % N` and `(i + 2) % N`.
const N: usize = 4;

fn module() -> String {
    let mut s = String::from("(module\n");
    for i in 0..N {
        s.push_str(&format!(
            "(func $f{i} (export \"f{i}\") (param i32) (result i32)\n\
               local.get 0 i32.eqz if (result i32) i32.const 0 else\n\
               local.get 0 i32.const 1 i32.sub call $f{}\n\
               local.get 0 i32.const 2 i32.sub call $f{} i32.add end)\n",
            (i + 1) % N,
            (i + 2) % N
        ));
    }
    s.push(')');
    s
}

fn aarch64(padding: usize, force: bool) -> CompilerConfig {
    CompilerConfig {
        target: Some("aarch64-unknown-linux-gnu".into()),
        padding_between_functions: padding,
        force_veneers: force,
        ..CompilerConfig::default()
    }
}

fn word(text: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(text[at..at + 4].try_into().unwrap())
}

/// Follows a veneer (`ldrsw x16, [pc+16]; adr x17, #12; add x16, x16, x17;
/// br x16; .word offset`) to its target, or `None` if `at` is no veneer.
fn follow_veneer(text: &[u8], at: usize) -> Option<usize> {
    const LDRSW_X16_PC16: u32 = 0x9800_0090;
    const BR_X16: u32 = 0xd61f_0200;
    if word(text, at) != LDRSW_X16_PC16 || word(text, at + 12) != BR_X16 {
        return None;
    }
    let offset = word(text, at + 16) as i32 as i64;
    Some((at as i64 + 16 + offset) as usize)
}

/// For each body, the bodies its `bl` instructions reach, and how many of
/// those calls went through a veneer.
fn call_graph(obj: &CompiledObject) -> (Vec<BTreeSet<usize>>, usize) {
    let text = &obj.object[obj.layout.text_offset as usize..][..obj.layout.text_len as usize];
    let starts: Vec<usize> = obj
        .info
        .funcs
        .values()
        .map(|f| f.wasm_func.start as usize)
        .collect();
    let mut veneered = 0;
    let graph = obj
        .info
        .funcs
        .values()
        .map(|f| {
            let mut callees = BTreeSet::new();
            let body =
                f.wasm_func.start as usize..(f.wasm_func.start + f.wasm_func.length) as usize;
            for pc in body.step_by(4) {
                let w = word(text, pc);
                if w >> 26 != 0b100101 {
                    continue;
                }
                let imm = ((w & 0x03ff_ffff) << 6) as i32 >> 6;
                let mut target = (pc as i64 + i64::from(imm) * 4) as usize;
                if !starts.contains(&target) {
                    target = follow_veneer(text, target).unwrap_or_else(|| {
                        panic!("bl at {pc:#x} reaches neither a function nor a veneer")
                    });
                    veneered += 1;
                }
                let callee = starts.iter().position(|s| *s == target).unwrap_or_else(|| {
                    panic!("call at {pc:#x} lands at {target:#x}, not a function")
                });
                callees.insert(callee);
            }
            callees
        })
        .collect();
    (graph, veneered)
}

fn expected() -> Vec<BTreeSet<usize>> {
    (0..N)
        .map(|i| [(i + 1) % N, (i + 2) % N].into_iter().collect())
        .collect()
}

#[test]
fn direct_calls_reach_their_callees() {
    let obj = compile(aarch64(0, false), &module());
    let (graph, veneered) = call_graph(&obj);
    assert_eq!(graph, expected());
    assert_eq!(veneered, 0);
}

#[test]
fn forced_veneers_reach_their_callees() {
    let obj = compile(aarch64(0, true), &module());
    let (graph, veneered) = call_graph(&obj);
    assert_eq!(graph, expected());
    assert_eq!(veneered, 2 * N, "every call goes through a veneer");
}

#[test]
fn calls_past_128_mib_go_through_veneers() {
    // 48 MiB between neighbours: calls to the next function stay within
    // reach of `bl`, calls two or three functions away (> 128 MiB back or
    // forth) need veneers.
    let obj = compile(aarch64(48 << 20, false), &module());
    let (graph, veneered) = call_graph(&obj);
    assert_eq!(graph, expected());
    assert!(veneered > 0, "some calls are out of direct reach");
    assert!(veneered < 2 * N, "near calls stay direct");
}
