;; compute/hash: 64-bit FNV-1a over the first n bytes of linear memory
;; (16 MiB). `init` fills the memory once with an xorshift byte stream.
(module
  (memory 256)
  (func (export "init") (param $n i32)
    (local $i i32) (local $x i32)
    i32.const 0x9e3779b9
    local.set $x
    (block $d (loop $l
      local.get $i
      local.get $n
      i32.ge_u
      br_if $d
      ;; x ^= x << 13; x ^= x >> 17; x ^= x << 5
      local.get $x
      local.get $x
      i32.const 13
      i32.shl
      i32.xor
      local.set $x
      local.get $x
      local.get $x
      i32.const 17
      i32.shr_u
      i32.xor
      local.set $x
      local.get $x
      local.get $x
      i32.const 5
      i32.shl
      i32.xor
      local.set $x
      local.get $i
      local.get $x
      i32.store8
      local.get $i
      i32.const 1
      i32.add
      local.set $i
      br $l)))
  (func (export "run") (param $n i32) (result i64)
    (local $i i32) (local $h i64)
    i64.const 0xcbf29ce484222325
    local.set $h
    (block $d (loop $l
      local.get $i
      local.get $n
      i32.ge_u
      br_if $d
      local.get $h
      local.get $i
      i64.load8_u
      i64.xor
      i64.const 0x100000001b3
      i64.mul
      local.set $h
      local.get $i
      i32.const 1
      i32.add
      local.set $i
      br $l))
    local.get $h))
