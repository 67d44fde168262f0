;; compute/matmul: C = A * B for n x n f64 matrices (n <= 100), row-major
;; at A = 0, B = 80000, C = 160000. `init` fills A and B once; run(n)
;; multiplies and returns the bits of the sum of C's elements.
(module
  (memory 4)
  (func (export "init") (param $n i32)
    (local $i i32) (local $j i32) (local $off i32)
    (block $di (loop $li
      local.get $i
      local.get $n
      i32.ge_u
      br_if $di
      i32.const 0
      local.set $j
      (block $dj (loop $lj
        local.get $j
        local.get $n
        i32.ge_u
        br_if $dj
        ;; off = (i * n + j) * 8
        local.get $i
        local.get $n
        i32.mul
        local.get $j
        i32.add
        i32.const 3
        i32.shl
        local.set $off
        ;; A[i][j] = ((i + 2j) % 17) / 7 - 1
        local.get $off
        local.get $i
        local.get $j
        i32.const 1
        i32.shl
        i32.add
        i32.const 17
        i32.rem_u
        f64.convert_i32_u
        f64.const 7
        f64.div
        f64.const 1
        f64.sub
        f64.store
        ;; B[i][j] = ((3i + j) % 13) / 5 + 0.25
        local.get $off
        i32.const 80000
        i32.add
        local.get $i
        i32.const 3
        i32.mul
        local.get $j
        i32.add
        i32.const 13
        i32.rem_u
        f64.convert_i32_u
        f64.const 5
        f64.div
        f64.const 0.25
        f64.add
        f64.store
        local.get $j
        i32.const 1
        i32.add
        local.set $j
        br $lj))
      local.get $i
      i32.const 1
      i32.add
      local.set $i
      br $li)))
  (func (export "run") (param $n i32) (result i64)
    (local $i i32) (local $j i32) (local $k i32)
    (local $acc f64) (local $total f64)
    (block $di (loop $li
      local.get $i
      local.get $n
      i32.ge_u
      br_if $di
      i32.const 0
      local.set $j
      (block $dj (loop $lj
        local.get $j
        local.get $n
        i32.ge_u
        br_if $dj
        f64.const 0
        local.set $acc
        i32.const 0
        local.set $k
        (block $dk (loop $lk
          local.get $k
          local.get $n
          i32.ge_u
          br_if $dk
          ;; acc += A[i][k] * B[k][j]
          local.get $acc
          local.get $i
          local.get $n
          i32.mul
          local.get $k
          i32.add
          i32.const 3
          i32.shl
          f64.load
          local.get $k
          local.get $n
          i32.mul
          local.get $j
          i32.add
          i32.const 3
          i32.shl
          f64.load offset=80000
          f64.mul
          f64.add
          local.set $acc
          local.get $k
          i32.const 1
          i32.add
          local.set $k
          br $lk))
        ;; C[i][j] = acc
        local.get $i
        local.get $n
        i32.mul
        local.get $j
        i32.add
        i32.const 3
        i32.shl
        local.get $acc
        f64.store offset=160000
        local.get $total
        local.get $acc
        f64.add
        local.set $total
        local.get $j
        i32.const 1
        i32.add
        local.set $j
        br $lj))
      local.get $i
      i32.const 1
      i32.add
      local.set $i
      br $li))
    local.get $total
    i64.reinterpret_f64))
