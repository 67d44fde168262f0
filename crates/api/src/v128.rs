//! [`V128`], the value of a Wasm `v128`, as in Wasmtime.
//!
//! It is stored as 16 bytes in native order rather than as a `u128`, so
//! that it has the alignment of a byte: a `u128` field would make every
//! [`Val`](crate::Val) 16-byte aligned and larger. Typed calls pass it in a
//! vector register, as Cranelift passes `i8x16`.

use crate::store::StoreInner;
use crate::{Result, WasmTy};
use kiln_environ::ValType;
use kiln_runtime::ValRaw;
use std::cmp::Ordering;
use std::fmt;

/// A 128-bit SIMD value.
// Equality of the bytes is equality of the integers; the order is the
// integers' (`Ord` below), not the bytes'.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash)]
pub struct V128([u8; 16]);

impl V128 {
    /// The value as an integer (lane 0 in the low bits).
    pub fn as_u128(&self) -> u128 {
        u128::from_ne_bytes(self.0)
    }
}

impl From<u128> for V128 {
    fn from(v: u128) -> V128 {
        V128(v.to_ne_bytes())
    }
}

impl From<V128> for u128 {
    fn from(v: V128) -> u128 {
        v.as_u128()
    }
}

impl fmt::Debug for V128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V128({:#034x})", self.as_u128())
    }
}

impl PartialOrd for V128 {
    fn partial_cmp(&self, other: &V128) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for V128 {
    fn cmp(&self, other: &V128) -> Ordering {
        self.as_u128().cmp(&other.as_u128())
    }
}

#[cfg(target_arch = "x86_64")]
type V128Abi = std::arch::x86_64::__m128i;
#[cfg(target_arch = "aarch64")]
type V128Abi = std::arch::aarch64::uint8x16_t;

// SAFETY: a vector register type is passed in a vector register, as
// Cranelift passes `i8x16`; the conversions below are between 16 plain
// bytes with no invalid bit patterns.
unsafe impl WasmTy for V128 {
    type Abi = V128Abi;
    fn valtype() -> ValType {
        ValType::V128
    }
    fn into_abi<T>(self, _: &mut StoreInner<T>) -> Result<V128Abi> {
        // SAFETY: both are 16 plain bytes.
        Ok(unsafe { std::mem::transmute::<[u8; 16], V128Abi>(self.0) })
    }
    fn from_abi<T>(abi: V128Abi, _: &mut StoreInner<T>) -> V128 {
        // SAFETY: both are 16 plain bytes.
        V128(unsafe { std::mem::transmute::<V128Abi, [u8; 16]>(abi) })
    }
    fn into_raw<T>(self, _: &mut StoreInner<T>) -> Result<ValRaw> {
        Ok(ValRaw::u128(self.as_u128()))
    }
    fn from_raw<T>(raw: ValRaw, _: &mut StoreInner<T>) -> V128 {
        V128::from(raw.get_u128())
    }
}

#[cfg(test)]
mod tests {
    use super::V128;

    #[test]
    fn round_trips_and_orders_as_its_integer() {
        let v = V128::from(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10u128);
        assert_eq!(u128::from(v), 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        assert!(V128::from(1) < V128::from(1u128 << 127));
        assert_eq!(std::mem::align_of::<V128>(), 1);
        assert_eq!(
            format!("{:?}", V128::from(0xff)),
            "V128(0x000000000000000000000000000000ff)"
        );
    }
}
