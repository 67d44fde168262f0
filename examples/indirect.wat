;; indirect.wat: `call_indirect` through a table of four functions.
;;
;; The table holds, at indices 0 to 3, functions of type (i32) -> i32:
;;   0 add1   x + 1
;;   1 double x * 2
;;   2 square x * x
;;   3 negate -x
;; Exports `apply (param $idx i32) (param $x i32) (result i32)`, which calls
;; table entry idx with x. An idx outside 0..=3 traps (undefined element).
;;
;; Expected: apply 0 7 = 8, apply 1 7 = 14, apply 2 7 = 49, apply 3 7 = -7;
;; apply 4 7 traps.
(module
  (type $unop (func (param i32) (result i32)))

  (func $add1 (type $unop) (i32.add (local.get 0) (i32.const 1)))
  (func $double (type $unop) (i32.mul (local.get 0) (i32.const 2)))
  (func $square (type $unop) (i32.mul (local.get 0) (local.get 0)))
  (func $negate (type $unop) (i32.sub (i32.const 0) (local.get 0)))

  ;; The only table, so the MVP forms of `elem` and `call_indirect` apply.
  (table 4 4 funcref)
  (elem (i32.const 0) $add1 $double $square $negate)

  (func (export "apply") (param $idx i32) (param $x i32) (result i32)
    (call_indirect (type $unop) (local.get $x) (local.get $idx))))
