;; fib.wat: recursive Fibonacci, a benchmark of calls.
;;
;; Exports `fib (param i32) (result i64)` with fib 0 = 0, fib 1 = 1 and
;; fib n = fib (n - 1) + fib (n - 2). Negative arguments return 0.
;;
;; Expected: fib 10 = 55, fib 30 = 832040 (about 2.7 million calls).
(module
  (func $fib (export "fib") (param $n i32) (result i64)
    (if (result i64) (i32.lt_s (local.get $n) (i32.const 2))
      (then
        ;; fib 0 = 0, fib 1 = 1 (and 0 for negative n).
        (i64.extend_i32_u
          (i32.gt_s (local.get $n) (i32.const 0))))
      (else
        (i64.add
          (call $fib (i32.sub (local.get $n) (i32.const 1)))
          (call $fib (i32.sub (local.get $n) (i32.const 2))))))))
