//! The state digest: a fast 64-bit hash (XXH3) of everything a tick
//! settles into, computed on the engine thread in Phase 8 of every tick.
//!
//! The state is walked through its serde derives (so a field added to the
//! economy is covered without touching this file) by a small serializer
//! that writes every number at a fixed width, little-endian, into a 1 KiB
//! buffer feeding the hasher. Fixed width rather than a codec's varints,
//! because this runs every tick: see docs/benchmarks.md for its cost.

use serde::{Serialize, ser};
use xxhash_rust::xxh3::Xxh3;

use super::{Economy, GlobalRegistry};

/// The digest of the settled state: the tick, every parameter value and the
/// whole economy (agents, ledger, random stream).
pub fn state_digest(tick: u64, registry: &GlobalRegistry, economy: &Economy) -> u64 {
    let mut hasher = StateHasher::default();
    // Writing numbers into a hasher cannot fail.
    let _ = (tick, registry.values(), economy).serialize(&mut hasher);
    hasher.finish()
}

const BUFFER: usize = 1024;

/// A serde serializer into an XXH3 hasher.
struct StateHasher {
    hasher: Xxh3,
    buf: [u8; BUFFER],
    len: usize,
}

impl Default for StateHasher {
    fn default() -> Self {
        Self {
            hasher: Xxh3::new(),
            buf: [0; BUFFER],
            len: 0,
        }
    }
}

impl StateHasher {
    fn write(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > BUFFER {
            self.hasher.update(&self.buf[..self.len]);
            self.len = 0;
        }
        if bytes.len() > BUFFER {
            self.hasher.update(bytes);
        } else {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }

    fn finish(mut self) -> u64 {
        self.hasher.update(&self.buf[..self.len]);
        self.hasher.digest()
    }
}

/// Never produced: hashing cannot fail.
#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unreachable")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Never
    }
}

macro_rules! fixed {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method(self, v: $ty) -> Result<(), Never> {
            self.write(&v.to_le_bytes());
            Ok(())
        })*
    };
}

impl ser::Serializer for &mut StateHasher {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fixed!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128, serialize_f32: f32, serialize_f64: f64,
    );

    fn serialize_bool(self, v: bool) -> Result<(), Never> {
        self.serialize_u8(u8::from(v))
    }

    fn serialize_char(self, v: char) -> Result<(), Never> {
        self.serialize_u32(u32::from(v))
    }

    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.serialize_bytes(v.as_bytes())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
        self.serialize_u64(v.len() as u64)?;
        self.write(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Never> {
        self.serialize_u8(0)
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Never> {
        self.serialize_u8(1)?;
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<(), Never> {
        self.serialize_u32(index)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.serialize_u32(index)?;
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Never> {
        self.serialize_u64(len.unwrap_or(usize::MAX) as u64)?;
        Ok(self)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        self.serialize_u32(index)?;
        Ok(self)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self, Never> {
        self.serialize_seq(len)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        self.serialize_u32(index)?;
        Ok(self)
    }
}

macro_rules! compound {
    ($($trait:ident :: $method:ident),* $(,)?) => {
        $(impl ser::$trait for &mut StateHasher {
            type Ok = ();
            type Error = Never;
            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Never> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Never> {
                Ok(())
            }
        })*
    };
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for &mut StateHasher {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Never> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut StateHasher {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut StateHasher {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_sees_every_change_and_only_changes() {
        let registry = GlobalRegistry::with_defaults();
        let economy = Economy::new(&registry, 7).unwrap();
        let digest = state_digest(3, &registry, &economy);
        assert_eq!(digest, state_digest(3, &registry, &economy.clone()));
        assert_ne!(digest, state_digest(4, &registry, &economy));
        let mut changed = registry.clone();
        changed
            .set("fiscal.vat_rate", Some(crate::engine::Value::Number(0.11)))
            .unwrap();
        assert_ne!(digest, state_digest(3, &changed, &economy));
        let other_seed = Economy::new(&registry, 8).unwrap();
        assert_ne!(digest, state_digest(3, &registry, &other_seed));
    }
}
