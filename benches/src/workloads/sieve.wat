;; compute/sieve: the sieve of Eratosthenes over one byte per number in
;; linear memory; run(n) counts the primes below n (78498 below 1,000,000).
(module
  (memory 16)
  (func (export "run") (param $n i32) (result i64)
    (local $i i32) (local $j i32) (local $count i64)
    ;; mark 2..n as candidates
    i32.const 2
    local.set $i
    (block $d0 (loop $l0
      local.get $i
      local.get $n
      i32.ge_u
      br_if $d0
      local.get $i
      i32.const 1
      i32.store8
      local.get $i
      i32.const 1
      i32.add
      local.set $i
      br $l0))
    ;; cross out multiples of each prime p with p * p < n
    i32.const 2
    local.set $i
    (block $d1 (loop $l1
      local.get $i
      local.get $i
      i32.mul
      local.get $n
      i32.ge_u
      br_if $d1
      local.get $i
      i32.load8_u
      if
        local.get $i
        local.get $i
        i32.mul
        local.set $j
        (block $d2 (loop $l2
          local.get $j
          local.get $n
          i32.ge_u
          br_if $d2
          local.get $j
          i32.const 0
          i32.store8
          local.get $j
          local.get $i
          i32.add
          local.set $j
          br $l2))
      end
      local.get $i
      i32.const 1
      i32.add
      local.set $i
      br $l1))
    ;; count
    i32.const 2
    local.set $i
    (block $d3 (loop $l3
      local.get $i
      local.get $n
      i32.ge_u
      br_if $d3
      local.get $count
      local.get $i
      i64.load8_u
      i64.add
      local.set $count
      local.get $i
      i32.const 1
      i32.add
      local.set $i
      br $l3))
    local.get $count))
