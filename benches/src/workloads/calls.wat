;; Calls across the host boundary.
;;   inc:       host -> Wasm, returns its argument plus one.
;;   call_host: Wasm -> host, calls the imported `host.inc` n times in a
;;              loop, threading the result through; returns n when
;;              `host.inc` adds one.
(module
  (import "host" "inc" (func $host_inc (param i32) (result i32)))
  (func (export "inc") (param i32) (result i32)
    local.get 0
    i32.const 1
    i32.add)
  (func (export "call_host") (param $n i32) (result i32)
    (local $acc i32)
    (block $done
      (loop $top
        local.get $n
        i32.eqz
        br_if $done
        local.get $acc
        call $host_inc
        local.set $acc
        local.get $n
        i32.const 1
        i32.sub
        local.set $n
        br $top))
    local.get $acc))
