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

use super::py27_float;

/// One field value, as the Python implementation would have held it.
#[derive(Clone, Debug, PartialEq)]
pub enum Field<'a> {
    /// Python `None`: rendered as the empty string.
    None,
    /// Python `True` / `False`.
    Bool(bool),
    /// A Python `int` or `long`, rendered in decimal without a suffix.
    Int(i128),
    /// A Python `float`, rendered as CPython 2.7's `str()`: 12 significant digits, in
    /// exponential form below `1e-4` and from `1e11`, `.0` appended to an integral value in
    /// fixed form (see [`render_py2_float`] for the exact rule).
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

/// Renders a float as CPython 2.7's `str(float)`, byte for byte.
///
/// The digits are those of David Gay's `dtoa` (CPython's `Python/dtoa.c`, mode 2, 12 digits):
/// the exact binary value rounded to 12 significant digits, a tie going to the even digit,
/// trailing zeros dropped, except in one case: an integer below `10^15` that is an exact tie
/// (its digits after the 12th significant one are `5`, `50` or `500`) and rounds down (its 12th
/// digit is even) keeps the trailing zeros of its 12 digits, so `str(33798777981050.0)` is `3.37987779810e+13` while
/// `str(33798777981150.0)` is `3.37987779812e+13`. Those are the values for which `dtoa`'s
/// double-precision quick path, which strips zeros, cannot decide and its small-integer step,
/// which does not, takes over. The implementation follows `dtoa`'s steps, emulating the quick
/// path's double arithmetic and error bound operation for operation, and uses exact big-integer
/// arithmetic where `dtoa` does.
///
/// The digits `d1 d2 ... dn` stand for `0.d1d2...dn * 10^p`. As CPython's `format_float_short`
/// does for format `'g'`, precision 12, with `.0` added to integers:
///
/// * if `p <= -4` or `p > 11` (the value is below `1e-4`, or from `1e11` on after rounding), the
///   form is exponential: `d1`, then `.d2...dn` if `n > 1`, then `e`, the sign of `p - 1` and at
///   least two digits of it (`1e+16`, `1.5e-07`, `1.23456789012e+11`, `4.94065645841e-324`);
/// * if `p <= 0`, `0.`, `-p` zeros, then the digits (`0.0001`, `0.333333333333`);
/// * if `p < n`, the digits with the point after the `p`-th (`1.5`, `99999999999.5`);
/// * otherwise the digits, `p - n` zeros and `.0` (`6400000.0`, `99999999999.0`).
///
/// A negative value (including `-0.0`) gets a leading `-`; zero renders `0.0`. Infinities are
/// `inf` and `-inf`, and every NaN is `nan`, whatever its sign.
///
/// This is the one place in the project that formats a float, because the legacy format
/// demands it.
pub fn render_py2_float(v: f64, out: &mut Vec<u8>) {
    if v.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if v.is_sign_negative() {
        out.push(b'-');
    }
    if v.is_infinite() {
        out.extend_from_slice(b"inf");
        return;
    }
    if v == 0.0 {
        out.extend_from_slice(b"0.0");
        return;
    }
    let d = py27_float::digits(v);
    let digits = d.as_slice();
    let n = digits.len() as i32;
    let p = d.decpt;
    if p <= -4 || p > 11 {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.extend_from_slice(first);
        if !rest.is_empty() {
            out.push(b'.');
            out.extend_from_slice(rest);
        }
        let exp = p - 1;
        out.extend_from_slice(if exp < 0 { b"e-" } else { b"e+" });
        if exp.unsigned_abs() < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(format!("{}", exp.unsigned_abs()).as_bytes());
    } else if p <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(core::iter::repeat_n(b'0', p.unsigned_abs() as usize));
        out.extend_from_slice(digits);
    } else if p < n {
        let (int, frac) = digits.split_at(p as usize);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    } else {
        out.extend_from_slice(digits);
        out.extend(core::iter::repeat_n(b'0', (p - n) as usize));
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
        // Expected values are what CPython 2.7.18 prints for str(x).
        let cases: &[(f64, &str)] = &[
            (6400000.0, "6400000.0"),
            (1e16, "1e+16"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.333333333333"),
            (100.0, "100.0"),
            // Exponential form from 1e11 on, because of the added ".0".
            (123456789012.0, "1.23456789012e+11"),
            (100000000000.0, "1e+11"),
            (99999999999.0, "99999999999.0"),
            (99999999999.5, "99999999999.5"),
            // A tie in an integer below 1e15 rounded down keeps its trailing zero...
            (33798777981050.0, "3.37987779810e+13"),
            (-33798777981050.0, "-3.37987779810e+13"),
            // ... a tie rounded up has none, and a non-integral tie loses it.
            (33798777981150.0, "3.37987779812e+13"),
            (123456789010.5, "1.2345678901e+11"),
            (1234567890123.0, "1.23456789012e+12"),
            (1234567890125.0, "1.23456789012e+12"),
            (999999999999.5, "1e+12"),
            (1e-4, "0.0001"),
            (-1e-4, "-0.0001"),
            (0.00009999999999995, "9.99999999999e-05"),
            (1e-5, "1e-05"),
            (2.5e-5, "2.5e-05"),
            (1.5e-7, "1.5e-07"),
            (0.000123456789012345, "0.000123456789012"),
            (-2.5, "-2.5"),
            (1e22, "1e+22"),
            (1e23, "1e+23"),
            (1e100, "1e+100"),
            (1e300, "1e+300"),
            (1e-300, "1e-300"),
            (1.7976931348623157e308, "1.79769313486e+308"),
            (2.2250738585072014e-308, "2.22507385851e-308"),
            (-1e-310, "-1e-310"),
            (5e-324, "4.94065645841e-324"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (-f64::NAN, "nan"),
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
