//! Bounds pre-check for request bodies, run before kafka-protocol decodes them.
//!
//! kafka-protocol 0.18's generated decoders call `Vec::with_capacity(n)` with
//! an array count `n` taken straight from the wire, so a ten-byte request
//! claiming 2^31 elements makes the allocator abort the process (allocation
//! failure is not a panic and cannot be caught). Before a body is handed to
//! `Decodable::decode`, [`check_request_body`] walks it with a small schema
//! interpreter (tables in `precheck/schemas.rs`) and checks every length
//! prefix against the bytes that are really there:
//!
//! * an array count `n` is accepted only if `n` times the smallest possible
//!   encoding of one element fits in the remaining bytes (every element takes
//!   at least one byte), and then every element is walked;
//! * string and bytes lengths must fit in the remaining bytes;
//! * negative lengths are rejected, except `-1` (null) for nullable fields;
//! * in flexible versions lengths are unsigned varints holding `length + 1`
//!   (`0` is null) and every struct ends with a tagged-field section (count,
//!   then per field tag, size and `size` bytes) that is checked the same way;
//!   tagged fields the library decodes as typed values are walked inside a
//!   window of exactly `size` bytes;
//! * varints longer than five bytes, or overflowing 32 bits, are rejected;
//! * the walk must consume the body exactly.
//!
//! Every element visit consumes at least one byte and the walk also keeps an
//! element budget of `body.len()`, so a walk is linear in the body length.
//! Nesting depth is fixed by the static schemas (at most four levels).
//!
//! Once a body passes, each count the library sees is bounded by the body
//! length, so decoding allocates at most a small constant factor of the body.
//! Record batches inside Produce requests stay opaque bytes here; they are
//! checked where they are parsed.

// One line per field reads better than rustfmt's layout for these tables.
#[rustfmt::skip]
mod schemas;
#[cfg(test)]
mod tests;

use schemas::SCHEMAS;

/// Error saying where and why a request body is malformed.
///
/// Offsets (`at`) are byte positions within the body, i.e. counted from the
/// first byte after the request header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrecheckError {
    /// The body ended in the middle of a field.
    #[error("request body truncated at byte {at}")]
    Truncated {
        /// Where the field that does not fit starts.
        at: usize,
    },
    /// A length or element count claims more than the body still holds.
    #[error("length {declared} at byte {at} exceeds the {remaining} bytes remaining")]
    LengthTooLarge {
        /// Where the length prefix starts.
        at: usize,
        /// The length or count as declared on the wire.
        declared: i64,
        /// Bytes left after the prefix (or, for element counts, what those
        /// bytes can hold at most).
        remaining: usize,
    },
    /// A negative length other than null, or null where null is not allowed.
    #[error("invalid negative length {declared} at byte {at}")]
    NegativeLength {
        /// Where the length prefix starts.
        at: usize,
        /// The length as declared (`-1` is null).
        declared: i64,
    },
    /// An unsigned varint longer than five bytes or larger than `u32::MAX`.
    #[error("unsigned varint at byte {at} is longer than 5 bytes or overflows 32 bits")]
    VarintTooLong {
        /// Where the varint starts.
        at: usize,
    },
    /// Bytes left over after the body (or after a tagged field's value).
    #[error("{count} unexpected trailing bytes")]
    TrailingBytes {
        /// How many bytes were not consumed.
        count: usize,
    },
    /// No schema for this api key at this version.
    #[error("no request schema for api key {api_key} version {version}")]
    UnsupportedVersion {
        /// The request's api key.
        api_key: i16,
        /// The request's api version.
        version: i16,
    },
}

/// Checks a request *body* (the bytes after the request header) of api
/// `api_key` at `version`.
///
/// `Ok(n)` means every length prefix in the body is consistent with the
/// body's size, followed by `n` ignored trailing bytes, so kafka-protocol's decoder
/// cannot be tricked into huge allocations by it. (The decoder may still
/// reject the body, e.g. for invalid UTF-8.)
pub fn check_request_body(api_key: i16, version: i16, body: &[u8]) -> Result<usize, PrecheckError> {
    let schema = SCHEMAS
        .iter()
        .find(|s| s.api_key == api_key && (s.min_version..=s.max_version).contains(&version))
        .ok_or(PrecheckError::UnsupportedVersion { api_key, version })?;
    let mut walker = Walker {
        body,
        pos: 0,
        end: body.len(),
        version,
        flexible: version >= schema.flexible_from,
        budget: body.len(),
    };
    walker.walk_struct(schema.body)?;
    // Kafka ignores bytes after a request body, and clients rely on it: librdkafka 2.12 sends
    // an "all topics" Metadata v9+ request with a 4-byte array count where the compact count is
    // one byte. So trailing bytes are reported, not refused; nothing reads them.
    Ok(body.len() - walker.pos)
}

/// The (min, max) version range this module has a schema for, per api key;
/// `None` if the api key is unknown.
pub fn supported_versions(api_key: i16) -> Option<(i16, i16)> {
    SCHEMAS
        .iter()
        .find(|s| s.api_key == api_key)
        .map(|s| (s.min_version, s.max_version))
}

/// Every api key with a schema, with its (min, max) version range, in api-key
/// order.
pub fn supported_apis() -> impl Iterator<Item = (i16, (i16, i16))> {
    SCHEMAS
        .iter()
        .map(|s| (s.api_key, (s.min_version, s.max_version)))
}

/// Wire type of a field.
#[derive(Debug, Clone, Copy)]
enum Ty {
    Bool,
    I8,
    I16,
    I32,
    I64,
    Uuid,
    /// `INT16` length (`UNSIGNED_VARINT` length + 1 when flexible).
    Str {
        nullable: bool,
    },
    /// `INT32` length (`UNSIGNED_VARINT` length + 1 when flexible).
    Bytes {
        nullable: bool,
    },
    /// `INT32` count (`UNSIGNED_VARINT` count + 1 when flexible).
    Array {
        elem: Elem,
        nullable: bool,
    },
}

/// Element type of an array.
#[derive(Debug, Clone, Copy)]
enum Elem {
    I32,
    I64,
    /// Non-nullable string.
    Str,
    Struct(&'static StructDef),
}

/// A struct: its fields in wire order and its typed tagged fields.
#[derive(Debug)]
struct StructDef {
    /// kafka-protocol's type name; documentation and test diagnostics only.
    #[allow(dead_code)]
    name: &'static str,
    fields: &'static [Field],
    tagged: &'static [TaggedField],
}

/// A field present on the wire in versions `min..=max`.
#[derive(Debug)]
struct Field {
    /// Field name; documentation and test diagnostics only.
    #[allow(dead_code)]
    name: &'static str,
    ty: Ty,
    min: i16,
    max: i16,
}

impl Field {
    fn present(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

/// A tagged field the library decodes as a typed value (versions `min..=max`).
#[derive(Debug)]
struct TaggedField {
    tag: u32,
    /// Field name; documentation and test diagnostics only.
    #[allow(dead_code)]
    name: &'static str,
    ty: Ty,
    min: i16,
    max: i16,
}

/// Request schema of one api.
#[derive(Debug)]
struct Schema {
    api_key: i16,
    /// Api name; documentation and test diagnostics only.
    #[allow(dead_code)]
    name: &'static str,
    min_version: i16,
    max_version: i16,
    /// First flexible version (`i16::MAX` if none).
    flexible_from: i16,
    body: &'static StructDef,
}

/// Walks one body. Invariant: `pos <= end <= body.len()`.
struct Walker<'a> {
    body: &'a [u8],
    pos: usize,
    /// End of the current window: the body, or a typed tagged field's value.
    end: usize,
    version: i16,
    flexible: bool,
    /// Array elements that may still be visited.
    budget: usize,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    fn skip(&mut self, n: usize) -> Result<(), PrecheckError> {
        if n > self.remaining() {
            return Err(PrecheckError::Truncated { at: self.pos });
        }
        self.pos += n;
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], PrecheckError> {
        let at = self.pos;
        let bytes = self
            .body
            .get(at..self.end)
            .and_then(|rest| rest.get(..N))
            .and_then(|b| <[u8; N]>::try_from(b).ok())
            .ok_or(PrecheckError::Truncated { at })?;
        self.pos += N;
        Ok(bytes)
    }

    /// Reads an unsigned varint the way kafka-protocol does, but rejects the
    /// encodings it would silently truncate (more than 5 bytes, > u32::MAX).
    fn uvarint(&mut self) -> Result<u32, PrecheckError> {
        let at = self.pos;
        let mut value = 0u32;
        for i in 0..5 {
            let [b] = self.take::<1>()?;
            if i == 4 && b > 0x0f {
                break;
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(PrecheckError::VarintTooLong { at })
    }

    /// Reads a length prefix: `INT16`/`INT32` (per `wide`) in classic
    /// versions, `UNSIGNED_VARINT` holding length + 1 in flexible ones.
    /// Returns the prefix's offset and the non-negative length, `None` for null.
    fn length(
        &mut self,
        wide: bool,
        nullable: bool,
    ) -> Result<(usize, Option<i64>), PrecheckError> {
        let at = self.pos;
        let declared = if self.flexible {
            i64::from(self.uvarint()?) - 1
        } else if wide {
            i64::from(i32::from_be_bytes(self.take()?))
        } else {
            i64::from(i16::from_be_bytes(self.take()?))
        };
        match declared {
            -1 if nullable => Ok((at, None)),
            d if d < 0 => Err(PrecheckError::NegativeLength { at, declared: d }),
            d => Ok((at, Some(d))),
        }
    }

    /// Walks a string or bytes value.
    fn blob(&mut self, wide: bool, nullable: bool) -> Result<(), PrecheckError> {
        let (at, len) = self.length(wide, nullable)?;
        let Some(len) = len else { return Ok(()) };
        let remaining = self.remaining();
        match usize::try_from(len) {
            Ok(n) if n <= remaining => self.skip(n),
            _ => Err(PrecheckError::LengthTooLarge {
                at,
                declared: len,
                remaining,
            }),
        }
    }

    fn walk_ty(&mut self, ty: Ty) -> Result<(), PrecheckError> {
        match ty {
            Ty::Bool | Ty::I8 => self.skip(1),
            Ty::I16 => self.skip(2),
            Ty::I32 => self.skip(4),
            Ty::I64 => self.skip(8),
            Ty::Uuid => self.skip(16),
            Ty::Str { nullable } => self.blob(false, nullable),
            Ty::Bytes { nullable } => self.blob(true, nullable),
            Ty::Array { elem, nullable } => self.array(elem, nullable),
        }
    }

    fn array(&mut self, elem: Elem, nullable: bool) -> Result<(), PrecheckError> {
        let (at, count) = self.length(true, nullable)?;
        let Some(count) = count else { return Ok(()) };
        // What the remaining bytes can hold at most (and what the element
        // budget still allows), given each element's smallest encoding.
        let per_elem = self.min_elem_size(elem).max(1);
        let capacity = (self.remaining() / per_elem).min(self.budget);
        let n = match usize::try_from(count) {
            Ok(n) if n <= capacity => n,
            _ => {
                return Err(PrecheckError::LengthTooLarge {
                    at,
                    declared: count,
                    remaining: capacity,
                })
            }
        };
        self.budget -= n;
        for _ in 0..n {
            match elem {
                Elem::I32 => self.skip(4)?,
                Elem::I64 => self.skip(8)?,
                Elem::Str => self.blob(false, false)?,
                Elem::Struct(def) => self.walk_struct(def)?,
            }
        }
        Ok(())
    }

    fn walk_struct(&mut self, def: &StructDef) -> Result<(), PrecheckError> {
        for field in def.fields {
            if field.present(self.version) {
                self.walk_ty(field.ty)?;
            }
        }
        if self.flexible {
            self.tagged_fields(def)?;
        }
        Ok(())
    }

    fn tagged_fields(&mut self, def: &StructDef) -> Result<(), PrecheckError> {
        let at = self.pos;
        let count = self.uvarint()?;
        // Each tagged field takes at least two bytes (tag and size).
        let capacity = self.remaining() / 2;
        if usize::try_from(count).map_or(true, |n| n > capacity) {
            return Err(PrecheckError::LengthTooLarge {
                at,
                declared: i64::from(count),
                remaining: capacity,
            });
        }
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size_at = self.pos;
            let size = self.uvarint()?;
            let remaining = self.remaining();
            let size = match usize::try_from(size) {
                Ok(n) if n <= remaining => n,
                _ => {
                    return Err(PrecheckError::LengthTooLarge {
                        at: size_at,
                        declared: i64::from(size),
                        remaining,
                    })
                }
            };
            let known = def
                .tagged
                .iter()
                .find(|t| t.tag == tag && (t.min..=t.max).contains(&self.version));
            match known {
                // The library decodes this value from the stream without
                // looking at `size`, so insist that it fills `size` exactly.
                Some(t) => {
                    let outer_end = self.end;
                    let window_end = self.pos + size;
                    self.end = window_end;
                    self.walk_ty(t.ty)?;
                    if self.pos != window_end {
                        return Err(PrecheckError::TrailingBytes {
                            count: window_end - self.pos,
                        });
                    }
                    self.end = outer_end;
                }
                None => self.skip(size)?,
            }
        }
        Ok(())
    }

    /// Smallest possible encoding of one array element at this version.
    fn min_elem_size(&self, elem: Elem) -> usize {
        match elem {
            Elem::I32 => 4,
            Elem::I64 => 8,
            Elem::Str => self.min_size(Ty::Str { nullable: false }),
            Elem::Struct(def) => {
                let fields: usize = def
                    .fields
                    .iter()
                    .filter(|f| f.present(self.version))
                    .map(|f| self.min_size(f.ty))
                    .sum();
                fields + usize::from(self.flexible)
            }
        }
    }

    /// Smallest possible encoding of a value of type `ty` at this version.
    fn min_size(&self, ty: Ty) -> usize {
        match ty {
            Ty::Bool | Ty::I8 => 1,
            Ty::I16 => 2,
            Ty::I32 => 4,
            Ty::I64 => 8,
            Ty::Uuid => 16,
            Ty::Str { .. } if !self.flexible => 2,
            Ty::Bytes { .. } | Ty::Array { .. } if !self.flexible => 4,
            Ty::Str { .. } | Ty::Bytes { .. } | Ty::Array { .. } => 1,
        }
    }
}
