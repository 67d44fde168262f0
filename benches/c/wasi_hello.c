// wasi/hello: the classic first program, through wasi-libc's stdio.
// Built at bench time: clang --target=wasm32-wasi -O2 (Debian's wasi-libc).
#include <stdio.h>

int main(void) {
    printf("Hello, world!\n");
    return 0;
}
