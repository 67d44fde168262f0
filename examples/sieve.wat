;; sieve.wat: the sieve of Eratosthenes over linear memory.
;;
;; Exports `memory` and `count_primes (param $n i32) (result i32)`, the
;; number of primes p with 2 <= p < n. One byte per number: byte i of memory
;; is 1 once i is known to be composite. The memory starts at one page and
;; the function grows it with `memory.grow` until n bytes fit; it returns -1
;; if the memory cannot grow that far. Calling it again re-clears the bytes.
;;
;; Expected: count_primes 100 = 25, count_primes 100000 = 9592 (memory grown
;; to 2 pages).
(module
  (memory (export "memory") 1)

  (func (export "count_primes") (param $n i32) (result i32)
    (local $i i32)
    (local $j i32)
    (local $count i32)
    (if (i32.lt_s (local.get $n) (i32.const 2))
      (then (return (i32.const 0))))

    ;; Grow the memory so that n bytes fit: ceil(n / 65536) pages.
    (if (i32.gt_u
          (i32.shr_u (i32.add (local.get $n) (i32.const 65535)) (i32.const 16))
          (memory.size))
      (then
        (if (i32.eq
              (memory.grow
                (i32.sub
                  (i32.shr_u (i32.add (local.get $n) (i32.const 65535)) (i32.const 16))
                  (memory.size)))
              (i32.const -1))
          (then (return (i32.const -1))))))

    ;; Nothing is known to be composite yet.
    (memory.fill (i32.const 0) (i32.const 0) (local.get $n))

    ;; For every i with i * i < n that is still unmarked, mark its
    ;; multiples from i * i on.
    (local.set $i (i32.const 2))
    (block $done
      (loop $outer
        (br_if $done
          (i32.ge_u (i32.mul (local.get $i) (local.get $i)) (local.get $n)))
        (if (i32.eqz (i32.load8_u (local.get $i)))
          (then
            (local.set $j (i32.mul (local.get $i) (local.get $i)))
            (block $marked
              (loop $inner
                (br_if $marked (i32.ge_u (local.get $j) (local.get $n)))
                (i32.store8 (local.get $j) (i32.const 1))
                (local.set $j (i32.add (local.get $j) (local.get $i)))
                (br $inner)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))

    ;; Count the unmarked numbers in [2, n).
    (local.set $i (i32.const 2))
    (block $counted
      (loop $count_loop
        (br_if $counted (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.eqz (i32.load8_u (local.get $i)))
          (then (local.set $count (i32.add (local.get $count) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $count_loop)))
    (local.get $count)))
