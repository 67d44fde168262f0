;; trap.wat: functions that trap, for testing trap reporting.
;;
;; Exports:
;;   div (param i32 i32) (result i32)  i32.div_s: div 7 2 = 3;
;;                                     div 1 0 traps "integer divide by zero";
;;                                     div -2147483648 -1 traps "integer overflow"
;;   oob (result i32)                  loads 4 bytes at 0x7fffffff of a one-page
;;                                     memory: always traps "out of bounds memory access"
;;   boom                              executes `unreachable`: always traps
;;                                     "unreachable"
(module
  (memory 1)

  (func (export "div") (param $a i32) (param $b i32) (result i32)
    (i32.div_s (local.get $a) (local.get $b)))

  (func (export "oob") (result i32)
    (i32.load (i32.const 0x7fffffff)))

  (func (export "boom")
    unreachable))
