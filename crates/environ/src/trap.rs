//! Trap codes shared by the code generator and the runtime.

use std::fmt;

/// Why WebAssembly execution stopped abnormally.
///
/// The code generator records one of these for every instruction that can
/// trap; the runtime's signal handler looks the faulting instruction up and
/// reports the code.
///
/// The variants and their `Display` texts are Wasmtime's.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum Trap {
    /// The Wasm stack limit was reached.
    StackOverflow,
    /// Out-of-bounds linear memory access.
    MemoryOutOfBounds,
    /// Misaligned atomic access.
    HeapMisaligned,
    /// Out-of-bounds table access.
    TableOutOfBounds,
    /// `call_indirect` on a null entry.
    IndirectCallToNull,
    /// `call_indirect` signature mismatch.
    BadSignature,
    /// Integer overflow (e.g. `i32.div_s` of `INT_MIN` by -1).
    IntegerOverflow,
    /// Integer division by zero.
    IntegerDivisionByZero,
    /// Float-to-int conversion of NaN or an out-of-range value.
    BadConversionToInteger,
    /// The `unreachable` instruction.
    UnreachableCodeReached,
    /// Execution was interrupted by an interrupt handle.
    Interrupt,
    /// Execution ran out of fuel.
    OutOfFuel,
    /// A null reference was dereferenced.
    NullReference,
}

impl Trap {
    /// All trap codes, in encoding order.
    pub const ALL: [Trap; 13] = [
        Trap::StackOverflow,
        Trap::MemoryOutOfBounds,
        Trap::HeapMisaligned,
        Trap::TableOutOfBounds,
        Trap::IndirectCallToNull,
        Trap::BadSignature,
        Trap::IntegerOverflow,
        Trap::IntegerDivisionByZero,
        Trap::BadConversionToInteger,
        Trap::UnreachableCodeReached,
        Trap::Interrupt,
        Trap::OutOfFuel,
        Trap::NullReference,
    ];

    /// A stable one-byte encoding, for trap tables in compiled artifacts:
    /// the position in [`Trap::ALL`].
    pub fn to_u8(self) -> u8 {
        self as u8
    }

    /// Decodes [`Trap::to_u8`].
    pub fn from_u8(b: u8) -> Option<Trap> {
        Self::ALL.get(usize::from(b)).copied()
    }
}

impl Trap {
    /// What the trap means, without the "wasm trap: " prefix of `Display`.
    pub fn description(self) -> &'static str {
        match self {
            Trap::StackOverflow => "call stack exhausted",
            Trap::MemoryOutOfBounds => "out of bounds memory access",
            Trap::HeapMisaligned => "unaligned atomic",
            Trap::TableOutOfBounds => "undefined element: out of bounds table access",
            Trap::IndirectCallToNull => "uninitialized element",
            Trap::BadSignature => "indirect call type mismatch",
            Trap::IntegerOverflow => "integer overflow",
            Trap::IntegerDivisionByZero => "integer divide by zero",
            Trap::BadConversionToInteger => "invalid conversion to integer",
            Trap::UnreachableCodeReached => "wasm `unreachable` instruction executed",
            Trap::Interrupt => "interrupt",
            Trap::OutOfFuel => "all fuel consumed by WebAssembly",
            Trap::NullReference => "null reference",
        }
    }
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wasm trap: {}", self.description())
    }
}

impl std::error::Error for Trap {}

#[cfg(test)]
mod tests {
    use super::Trap;

    #[test]
    fn encoding_is_the_position_in_all() {
        for (i, t) in Trap::ALL.iter().enumerate() {
            assert_eq!(usize::from(t.to_u8()), i);
            assert_eq!(Trap::from_u8(t.to_u8()), Some(*t));
        }
        assert_eq!(Trap::from_u8(Trap::ALL.len() as u8), None);
    }
}
