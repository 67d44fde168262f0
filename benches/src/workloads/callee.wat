;; Module A of `call/wasm-to-wasm-import`: the function module B imports.
(module
  (func (export "inc") (param i32) (result i32)
    local.get 0
    i32.const 1
    i32.add))
