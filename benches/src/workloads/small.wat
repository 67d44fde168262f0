;; instantiate/small: memory, table, globals, two imported functions, an
;; element and a data segment.
(module
  (import "host" "f1" (func $f1 (param i32) (result i32)))
  (import "host" "f2" (func $f2 (param i64)))
  (memory (export "memory") 1)
  (table (export "table") 16 funcref)
  (global $g1 (mut i32) (i32.const 0))
  (global $g2 (mut i64) (i64.const 1))
  (global (export "g3") f64 (f64.const 1.5))
  (elem (i32.const 0) $a $b $f1)
  (data (i32.const 16) "hello, instantiation")
  (func $a (export "a") (param i32) (result i32)
    local.get 0
    call $f1
    global.get $g1
    i32.add)
  (func $b (export "b") (param i64)
    local.get 0
    global.get $g2
    i64.add
    call $f2))
