// The one piece of Kiln that must be C: a setjmp whose frame stays alive
// while Wasm runs, and the longjmp that returns to it on a trap. Rust
// cannot call setjmp itself (it "returns twice"), so the body to protect is
// passed in as a callback and runs inside this frame.
//
// GCC's (and Clang's) __builtin_setjmp saves only the frame pointer, the
// stack pointer and the resume address; the compiler saves the callee-saved
// registers in this function's prologue because it calls setjmp. That is
// cheaper than libc's setjmp (no pointer mangling, no signal-mask call) and
// sufficient here: signals use SA_NODEFER, so the mask never needs
// restoring after a jump out of a handler.

typedef void (*kiln_body_t)(void *payload);

// Runs `body(payload)`. Returns 1 if it returned normally and 0 if
// `kiln_longjmp` was called with the buffer stored in `*buf_storage`.
int kiln_setjmp(void **buf_storage, kiln_body_t body, void *payload) {
  void *buf[5];
  if (__builtin_setjmp(buf) != 0) {
    return 0;
  }
  *buf_storage = buf;
  body(payload);
  return 1;
}

void kiln_longjmp(void *buf) {
  __builtin_longjmp((void **)buf, 1);
}
