;; hello.wat: the default entry point `_start`.
;;
;; A module without a `(start)` function that exports `_start` (no params,
;; no results), the export `kiln run` calls when no other is named. `_start`
;; adds 1 + 2 + ... + 100 into the exported mutable global `total` and
;; returns; nothing is printed, so a test reads the global afterwards.
;;
;; Expected: total = 0 after instantiation and 5050 after one call of
;; `_start` (each further call adds another 5050).
(module
  (global $total (export "total") (mut i32) (i32.const 0))

  (func (export "_start")
    (local $i i32)
    (local.set $i (i32.const 1))
    (loop $next
      (global.set $total (i32.add (global.get $total) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.le_u (local.get $i) (i32.const 100))))))
