;; instantiate/imports-table100: two imported host functions, a
;; 100-slot funcref table filled by one element segment (the two imports
;; and eight defined functions, ten times over), a global of every value
;; type (mutable and immutable) and a memory with a data segment.
(module
  (import "host" "f1" (func $f1 (param i32) (result i32)))
  (import "host" "f2" (func $f2 (param i64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello, instantiation")
  (table (export "table") 100 funcref)
  (global $i32 (mut i32) (i32.const 1))
  (global (export "i32c") i32 (i32.const 2))
  (global $i64 (mut i64) (i64.const 3))
  (global (export "i64c") i64 (i64.const 4))
  (global $f32 (mut f32) (f32.const 5.5))
  (global (export "f32c") f32 (f32.const 6.5))
  (global $f64 (mut f64) (f64.const 7.5))
  (global (export "f64c") f64 (f64.const 8.5))
  (global $v128 (mut v128) (v128.const i64x2 9 10))
  (global (export "v128c") v128 (v128.const i32x4 1 2 3 4))
  (global $fr (mut funcref) (ref.func $a))
  (global (export "frc") funcref (ref.null func))
  (elem (i32.const 0) func $f1 $f2 $a $b $c $d $e $f $g $h $f1 $f2 $a $b $c $d $e $f $g $h $f1 $f2 $a $b $c $d $e $f $g $h $f1 $f2 $a $b $c $d $e $f $g $h $f1 $f2 $a $b $c $d $e $f $g $h $f1 $f2 $a $b $c $d $e $f $g $h $f1 $f2 $a $b $c $d $e $f $g $h $f1 $f2 $a $b $c $d $e $f $g $h $f1 $f2 $a $b $c $d $e $f $g $h $f1 $f2 $a $b $c $d $e $f $g $h)
  (func $a (export "a") (param i32) (result i32)
    local.get 0
    call $f1
    global.get $i32
    i32.add)
  (func $b (export "b") (param i64)
    local.get 0
    global.get $i64
    i64.add
    call $f2)
  (func $c (param i32) (result i32)
    local.get 0
    i32.const 3
    i32.mul)
  (func $d (param i64)
    local.get 0
    global.set $i64)
  (func $e (result f32)
    global.get $f32)
  (func $f (result f64)
    global.get $f64)
  (func $g (param i32) (result i32)
    local.get 0
    i32.const 1
    call_indirect (param i32) (result i32))
  (func $h (export "h") (result i32)
    i32.const 16
    i32.load8_u))
