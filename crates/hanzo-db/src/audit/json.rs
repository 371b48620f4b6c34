//! A JSON writer for the few kinds of values an entry holds (objects with
//! fixed ASCII keys, strings, unsigned integers, booleans, `null`), with
//! the bytes `serde_json` writes for them (compact; strings escaped as
//! `serde_json` escapes them). It skips `serde`'s generic machinery, which
//! a dev build runs unoptimised, on the path that seals every read's entry.

/// An object being written: `{`, then fields, then [`Obj::end`]'s `}`.
pub(super) struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    /// Writes `"key":` (`key` is a field name: plain ASCII, not escaped).
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    pub(super) fn str(&mut self, key: &str, v: &str) -> &mut Self {
        string(self.key(key), v);
        self
    }

    /// A string, or `null`.
    pub(super) fn opt_str(&mut self, key: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.str(key, v),
            None => self.raw(key, b"null"),
        }
    }

    pub(super) fn u64(&mut self, key: &str, v: u64) -> &mut Self {
        number(self.key(key), v);
        self
    }

    /// A number, or `null`.
    pub(super) fn opt_u64(&mut self, key: &str, v: Option<u64>) -> &mut Self {
        match v {
            Some(v) => self.u64(key, v),
            None => self.raw(key, b"null"),
        }
    }

    pub(super) fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.raw(key, if v { b"true" } else { b"false" })
    }

    /// A value written by `f`.
    pub(super) fn with(&mut self, key: &str, f: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        f(self.key(key));
        self
    }

    fn raw(&mut self, key: &str, v: &[u8]) -> &mut Self {
        self.key(key).extend_from_slice(v);
        self
    }

    pub(super) fn end(&mut self) {
        self.out.push(b'}');
    }
}

/// A JSON string, escaped as `serde_json` escapes it.
pub(super) fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, s).expect("a string serializes");
    }
}

/// An unsigned integer in decimal.
pub(super) fn number(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "plain",
            "q\"uote",
            "back\\slash",
            "tab\tnew\nline\u{1}\u{1f}",
            "é ✓ 🦀 \u{7f} /",
        ] {
            let mut out = Vec::new();
            string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
        for v in [0, 7, 10, 99, 1_000_000, u64::MAX] {
            let mut out = Vec::new();
            number(&mut out, v);
            assert_eq!(out, serde_json::to_vec(&v).unwrap());
        }
        let mut out = Vec::new();
        Obj::new(&mut out)
            .str("a", "x\"")
            .opt_str("b", None)
            .u64("c", 3)
            .opt_u64("d", None)
            .bool("e", true)
            .with("f", |o| o.extend_from_slice(b"[]"))
            .end();
        let want =
            serde_json::json!({"a": "x\"", "b": null, "c": 3, "d": null, "e": true, "f": []});
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
            want
        );
        assert_eq!(
            out,
            br#"{"a":"x\"","b":null,"c":3,"d":null,"e":true,"f":[]}"#
        );
    }
}
