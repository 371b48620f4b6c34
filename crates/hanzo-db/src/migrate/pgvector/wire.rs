//! pgvector's binary wire format (`vector`, `halfvec`, `sparsevec`),
//! decoded to dense float32 exactly.

use tokio_postgres::types::{FromSql, Type};

use super::BoxError;

/// A pgvector value (`vector`, `halfvec` or `sparsevec`, binary format) as
/// dense float32.
pub(super) struct PgVec(pub(super) Vec<f32>);

impl<'a> FromSql<'a> for PgVec {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        decode_vector(ty.name(), raw).map(PgVec).map_err(Into::into)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(ty.name(), "vector" | "halfvec" | "sparsevec")
    }
}

fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes pgvector's binary send format (network byte order): `vector` is
/// int16 dim, int16 unused, dim × float4; `halfvec` the same with binary16
/// values; `sparsevec` int32 dim, int32 nnz, int32 unused, nnz × int32
/// 0-based indices, nnz × float4.
fn decode_vector(type_name: &str, raw: &[u8]) -> std::result::Result<Vec<f32>, String> {
    let short = || format!("{type_name} value of {} bytes is truncated", raw.len());
    match type_name {
        "vector" | "halfvec" => {
            if raw.len() < 4 {
                return Err(short());
            }
            let dim = be_u16(raw, 0) as usize;
            let width = if type_name == "vector" { 4 } else { 2 };
            if raw.len() != 4 + width * dim {
                return Err(short());
            }
            Ok((0..dim)
                .map(|i| {
                    let at = 4 + width * i;
                    if width == 4 {
                        f32::from_bits(be_i32(raw, at) as u32)
                    } else {
                        f16_to_f32(be_u16(raw, at))
                    }
                })
                .collect())
        }
        "sparsevec" => {
            if raw.len() < 12 {
                return Err(short());
            }
            let dim = be_i32(raw, 0).max(0) as usize;
            let nnz = be_i32(raw, 4).max(0) as usize;
            if raw.len() != 12 + 8 * nnz || dim > crate::schema::MAX_DIMENSION {
                return Err(short());
            }
            let mut dense = vec![0f32; dim];
            for k in 0..nnz {
                let idx = be_i32(raw, 12 + 4 * k);
                let val = f32::from_bits(be_i32(raw, 12 + 4 * nnz + 4 * k) as u32);
                let slot = usize::try_from(idx)
                    .ok()
                    .and_then(|i| dense.get_mut(i))
                    .ok_or_else(|| format!("sparsevec index {idx} is outside dimension {dim}"))?;
                *slot = val;
            }
            Ok(dense)
        }
        other => Err(format!("`{other}` is not a vector type")),
    }
}

/// IEEE 754 binary16 to binary32, exactly.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            let mut e: u32 = 127 - 15 + 1;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_binary_formats() {
        let mut v = vec![0, 3, 0, 0];
        for x in [1.5f32, -0.25, 3.0e-8] {
            v.extend_from_slice(&x.to_bits().to_be_bytes());
        }
        assert_eq!(
            decode_vector("vector", &v).unwrap(),
            vec![1.5, -0.25, 3.0e-8]
        );
        assert!(decode_vector("vector", &v[..9]).is_err());
        // halfvec: 1.0 = 0x3c00, -2.0 = 0xc000, smallest subnormal 0x0001 = 2^-24
        let h = [0u8, 3, 0, 0, 0x3c, 0x00, 0xc0, 0x00, 0x00, 0x01];
        assert_eq!(
            decode_vector("halfvec", &h).unwrap(),
            vec![1.0, -2.0, 2f32.powi(-24)]
        );
        // sparsevec {2:0.5}/4 -> 0-based index 1
        let mut s = Vec::new();
        for x in [4i32, 1, 0, 1] {
            s.extend_from_slice(&x.to_be_bytes());
        }
        s.extend_from_slice(&0.5f32.to_bits().to_be_bytes());
        assert_eq!(
            decode_vector("sparsevec", &s).unwrap(),
            vec![0.0, 0.5, 0.0, 0.0]
        );
    }

    #[test]
    fn converts_half_floats_exactly() {
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x83ff), -(1023.0 * 2f32.powi(-24)));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
