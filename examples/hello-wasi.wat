;; hello-wasi.wat: a WASI program, the smallest real one.
;;
;; It imports `fd_write` from WASI preview1 (`wasi_snapshot_preview1`),
;; writes one line to stdout (descriptor 1) and returns from `_start`, so
;; the process exits with status 0. Run it with
;;
;;   kiln run examples/hello-wasi.wat
;;
;; Expected: prints "Hello, world!" and exits with status 0. If the write
;; fails, `_start` calls `proc_exit` with the WASI errno instead.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; The text at 64; the iovec (pointer, length) at 0; bytes written at 8.
  (data (i32.const 64) "Hello, world!\n")

  (func (export "_start")
    (local $errno i32)
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 14))
    (local.set $errno
      (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (local.get $errno)
      (then (call $proc_exit (local.get $errno))))))
