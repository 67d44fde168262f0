// The one piece of Kiln that must be C: a setjmp whose frame stays alive
// while Wasm runs, and the longjmp that returns to it on a trap. Rust
// cannot call setjmp itself (it "returns twice"), so the body to protect is
// passed in as a callback and runs inside this frame.
#include <setjmp.h>

typedef void (*kiln_body_t)(void *payload);

// Runs `body(payload)`. Returns 1 if it returned normally and 0 if
// `kiln_longjmp` was called with the jmp_buf stored in `*buf_storage`.
int kiln_setjmp(void **buf_storage, kiln_body_t body, void *payload) {
  jmp_buf buf;
  if (setjmp(buf) != 0) {
    return 0;
  }
  *buf_storage = &buf;
  body(payload);
  return 1;
}

void kiln_longjmp(void *buf) {
  longjmp(*(jmp_buf *)buf, 1);
}
