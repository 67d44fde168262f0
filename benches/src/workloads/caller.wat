;; Module B of `call/wasm-to-wasm-import`: calls A's `inc`, imported as
;; `a.inc`, n times in a loop; returns n.
(module
  (import "a" "inc" (func $inc (param i32) (result i32)))
  (func (export "call_import") (param $n i32) (result i32)
    (local $acc i32)
    (block $done
      (loop $top
        local.get $n
        i32.eqz
        br_if $done
        local.get $acc
        call $inc
        local.set $acc
        local.get $n
        i32.const 1
        i32.sub
        local.set $n
        br $top))
    local.get $acc))
