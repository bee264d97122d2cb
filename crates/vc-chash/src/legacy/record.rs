//! Legacy record serialization: the netstring-like field list of virtualchain's `serialize_op`.
//!
//! A record is `opcode ":" item ("," item)*` where each item is `len ":" value`, `value` is the
//! field rendered as Python 2's `str()` would render it, and `len` its length in bytes. There is no
//! escaping: the lengths make the list parseable. The field list is the application's per-opcode
//! list of field names; a name may appear more than once, and its value is then rendered again.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;
use core::fmt;

/// One field value, as the Python implementation would have held it.
#[derive(Clone, Debug, PartialEq)]
pub enum Field<'a> {
    /// Python `None`: rendered as the empty string.
    None,
    /// Python `True` / `False`.
    Bool(bool),
    /// A Python `int` or `long`, rendered in decimal without a suffix.
    Int(i128),
    /// A Python `float`, rendered as `%.12g` plus `.0` when that looks integral.
    Float(f64),
    /// A Python 2 `str` (bytes), rendered as-is.
    Str(&'a [u8]),
}

impl<'a> From<&'a str> for Field<'a> {
    fn from(s: &'a str) -> Self {
        Field::Str(s.as_bytes())
    }
}

impl<'a> From<&'a [u8]> for Field<'a> {
    fn from(s: &'a [u8]) -> Self {
        Field::Str(s)
    }
}

impl From<bool> for Field<'_> {
    fn from(b: bool) -> Self {
        Field::Bool(b)
    }
}

impl From<i64> for Field<'_> {
    fn from(v: i64) -> Self {
        Field::Int(i128::from(v))
    }
}

impl From<u64> for Field<'_> {
    fn from(v: u64) -> Self {
        Field::Int(i128::from(v))
    }
}

impl From<f64> for Field<'_> {
    fn from(v: f64) -> Self {
        Field::Float(v)
    }
}

impl<'a, T: Into<Field<'a>>> From<Option<T>> for Field<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Field::None, Into::into)
    }
}

impl Field<'_> {
    /// Appends the Python 2 `str()` rendering of this value.
    pub fn render_into(&self, out: &mut Vec<u8>) {
        match self {
            Field::None => {}
            Field::Bool(true) => out.extend_from_slice(b"True"),
            Field::Bool(false) => out.extend_from_slice(b"False"),
            Field::Int(v) => out.extend_from_slice(format!("{v}").as_bytes()),
            Field::Float(v) => render_py2_float(*v, out),
            Field::Str(s) => out.extend_from_slice(s),
        }
    }
}

/// Renders a float as Python 2.7's `str(float)`: `%.12g`, then `.0` appended when the result
/// consists only of digits and a sign.
///
/// This is the one place in the project that formats a float, because the legacy format
/// demands it; Rust's float formatting is exact, so the 12-digit rounding matches Python's.
pub fn render_py2_float(v: f64, out: &mut Vec<u8>) {
    if v.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v < 0.0 { b"-inf" } else { b"inf" });
        return;
    }
    // 12 significant digits in scientific form: "-d.ddddddddddde<exp>".
    let sci = format!("{v:.11e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let start = out.len();
    if negative {
        out.push(b'-');
    }
    if !(-4..12).contains(&exp) {
        // Scientific: strip trailing zeros of the fraction, exponent with sign and >= 2 digits.
        let frac_end = digits.iter().rposition(|&d| d != b'0').map_or(1, |p| p + 1);
        out.push(digits[0]);
        if frac_end > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..frac_end.max(1)]);
        }
        out.extend_from_slice(
            format!(
                "e{}{:02}",
                if exp < 0 { '-' } else { '+' },
                exp.unsigned_abs()
            )
            .as_bytes(),
        );
    } else {
        // Fixed: digits with the point placed after exp + 1 digits, trailing zeros stripped.
        let mut fixed: Vec<u8> = Vec::with_capacity(20);
        let point = if exp >= 0 {
            let int_len = exp as usize + 1;
            fixed.extend_from_slice(&digits[..int_len]);
            fixed.push(b'.');
            fixed.extend_from_slice(&digits[int_len..]);
            int_len
        } else {
            fixed.extend_from_slice(b"0.");
            fixed.extend(core::iter::repeat_n(b'0', exp.unsigned_abs() as usize - 1));
            fixed.extend_from_slice(&digits);
            1
        };
        while fixed.len() > point + 1 && fixed.last() == Some(&b'0') {
            fixed.pop();
        }
        if fixed.last() == Some(&b'.') {
            fixed.pop();
        }
        out.extend_from_slice(&fixed);
    }
    if out[start..]
        .iter()
        .all(|&b| b == b'-' || b.is_ascii_digit())
    {
        out.extend_from_slice(b".0");
    }
}

/// Serializes a record from its opcode and the values of its field list, in order.
///
/// ```
/// use vc_chash::legacy::record::{serialize, Field};
/// let r = serialize(b"?", &[Field::from("abc"), Field::Int(42), Field::None]);
/// assert_eq!(r, b"?:3:abc,2:42,0:");
/// ```
pub fn serialize(opcode: &[u8], values: &[Field<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(opcode.len() + 1 + values.len() * 8);
    out.extend_from_slice(opcode);
    out.push(b':');
    let mut value = Vec::new();
    for (i, field) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        value.clear();
        field.render_into(&mut value);
        out.extend_from_slice(format!("{}:", value.len()).as_bytes());
        out.extend_from_slice(&value);
    }
    out
}

/// A field named in the field list but absent from the record: virtualchain refuses to
/// serialize such a record (it is a bug in the application).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingField(pub alloc::string::String);

impl fmt::Display for MissingField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record has no field '{}' named in its field list",
            self.0
        )
    }
}

impl core::error::Error for MissingField {}

/// Serializes a record given as named values, following the application's field list (which
/// may repeat names). A value that is present but `None` renders empty; a name with no value at
/// all is an error, as in the Python implementation.
pub fn serialize_named(
    opcode: &[u8],
    field_list: &[&str],
    values: &BTreeMap<&str, Field<'_>>,
) -> Result<Vec<u8>, MissingField> {
    let ordered = field_list
        .iter()
        .map(|name| {
            values
                .get(name)
                .cloned()
                .ok_or_else(|| MissingField((*name).into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(serialize(opcode, &ordered))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(v: f64) -> alloc::string::String {
        let mut out = Vec::new();
        render_py2_float(v, &mut out);
        alloc::string::String::from_utf8(out).unwrap()
    }

    #[test]
    fn python2_float_rendering() {
        // Expected values are what CPython 2.7 prints for str(x).
        let cases: &[(f64, &str)] = &[
            (6400000.0, "6400000.0"),
            (1e16, "1e+16"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.333333333333"),
            (100.0, "100.0"),
            (123456789012.0, "123456789012.0"),
            (1234567890123.0, "1.23456789012e+12"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-2.5, "-2.5"),
            (1e100, "1e+100"),
            (1.7976931348623157e308, "1.79769313486e+308"),
            (5e-324, "4.94065645841e-324"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (999999999999.5, "1e+12"),
            (0.000123456789012345, "0.000123456789012"),
            (1234567890125.0, "1.23456789012e+12"),
            (2.5e-5, "2.5e-05"),
        ];
        for (v, want) in cases {
            assert_eq!(py(*v), *want, "rendering {v:e}");
        }
    }

    #[test]
    fn vector_c() {
        let r = serialize(
            b"?",
            &[
                Field::from("abc"),
                Field::Int(42),
                Field::None,
                Field::Bool(true),
                Field::Float(6400000.0),
                Field::Float(1e16),
                Field::Int(25000),
                Field::from("abc"),
            ],
        );
        assert_eq!(
            r,
            b"?:3:abc,2:42,0:,4:True,9:6400000.0,5:1e+16,5:25000,3:abc"
        );
    }

    #[test]
    fn named_fields_repeat_and_missing() {
        let mut values = BTreeMap::new();
        values.insert("name", Field::from("foo.id"));
        values.insert("fee", Field::Int(-5));
        values.insert("flag", Field::Bool(false));
        let r = serialize_named(
            b"NAME_REGISTRATION",
            &["name", "fee", "name", "flag"],
            &values,
        )
        .unwrap();
        assert_eq!(r, b"NAME_REGISTRATION:6:foo.id,2:-5,6:foo.id,5:False");
        assert_eq!(
            serialize_named(b"x", &["name", "absent"], &values),
            Err(MissingField("absent".into()))
        );
        assert_eq!(serialize(b"+", &[]), b"+:");
    }
}
