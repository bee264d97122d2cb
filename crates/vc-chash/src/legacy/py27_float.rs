//! The digits of CPython 2.7's `str(float)`.
//!
//! CPython 2.7 renders `str(x)` from David Gay's `dtoa` in its mode 2 with 12 significant digits.
//! Gay's routine has three ways to produce those digits, and they do not all agree on trailing
//! zeros, so this module follows the same three steps:
//!
//! 1. **Quick path**, in double-precision arithmetic: scale the value by a power of ten into
//!    `[1, 10)` (with the same table of `10^0..10^22` and of `10^16, 10^32, 10^64, 10^128,
//!    10^256`, the same operations in the same order), bound the accumulated error `eps`, and
//!    peel off 12 digits. When the remainder after the 12th digit is more than `eps` away from
//!    one half, rounding is decided: up, or down with trailing zeros stripped.
//! 2. Otherwise, an **integer-valued double below `10^15`** is divided by `10^k` digit by digit
//!    in doubles (exact for such values): round half to even, but rounding *down* keeps the
//!    trailing zeros of the 12 digits (CPython prints `str(33798777981050.0)` as
//!    `3.37987779810e+13`).
//! 3. Otherwise, **exact arithmetic** on big integers: round half to even, trailing zeros
//!    stripped.
//!
//! Every step yields the correctly rounded (half-to-even) 12 significant digits; only step 2
//! can leave trailing zeros. The quick path is emulated exactly, because whether it decides
//! (and so whether step 2 runs) depends on its floating-point error bound. IEEE 754 double
//! arithmetic with round-to-nearest is deterministic, so the emulation is too. For integers the
//! bound is far tighter than the spacing of the possible remainders, so step 2 runs exactly for
//! ties (a unit test checks this).

use alloc::vec::Vec;
use core::cmp::Ordering;

/// The number of significant digits of `str(float)` in Python 2.
const PRECISION: usize = 12;

/// `10^0 ..= 10^22`, all exact doubles.
const TENS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `10^(16 * 2^i)`, the doubles nearest to them.
const BIG_TENS: [f64; 5] = [1e16, 1e32, 1e64, 1e128, 1e256];

// The constants of `dtoa`'s estimate of `log10`, exactly as written there: the estimate, and
// with it the quick path's scaling, depends on their exact values.
/// `log10(e) / 1.5`, to 15 digits.
const LOG10_E_OVER_1_5: f64 = 0.289529654602168;
/// `log10(1.5)`, rounded up by about `1e-13`.
const LOG10_1_5_UP: f64 = 0.1760912590558;
/// `log10(2)` to 15 digits (not `core::f64::consts::LOG10_2`).
#[allow(clippy::approx_constant)]
const LOG10_2_DTOA: f64 = 0.301029995663981;

/// The largest power of ten for which an integer-valued double takes the small-integer step.
const SMALL_INT_MAX_K: i32 = 14;

/// Up to 12 decimal digits (ASCII) and the position of the decimal point: the value is
/// `0.d1d2d3... * 10^decpt`.
pub(crate) struct Digits {
    buf: [u8; PRECISION],
    len: usize,
    /// Where the decimal point goes, counted in digits from the left of the first digit.
    pub(crate) decpt: i32,
}

impl Digits {
    fn new() -> Self {
        Digits {
            buf: [0; PRECISION],
            len: 0,
            decpt: 0,
        }
    }

    /// The digits, most significant first.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, digit: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = digit;
            self.len += 1;
        }
    }

    fn last(&self) -> Option<u8> {
        self.len.checked_sub(1).map(|i| self.buf[i])
    }

    /// Drops trailing zeros, keeping at least one digit.
    fn strip_zeros(&mut self) {
        while self.len > 1 && self.last() == Some(b'0') {
            self.len -= 1;
        }
    }

    /// Adds one unit in the last place: trailing nines are dropped and the digit before them is
    /// incremented; all nines become `1` and the exponent `k` grows by one.
    fn round_up(&mut self, k: &mut i32) {
        while let Some(last) = self.last() {
            if last != b'9' {
                self.buf[self.len - 1] = last + 1;
                return;
            }
            self.len -= 1;
        }
        self.buf[0] = b'1';
        self.len = 1;
        *k += 1;
    }
}

/// The 12 significant digits that CPython 2.7's `str()` prints for the magnitude of a finite,
/// nonzero double, and the position of the decimal point.
pub(crate) fn digits(v: f64) -> Digits {
    let bits = v.to_bits() & !(1 << 63);
    let v = f64::from_bits(bits);
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    // v = mantissa * 2^exp2 exactly.
    let (mantissa, exp2) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    let (mut k, k_check) = estimate_decimal_exponent(v, biased, fraction);

    let mut out = Digits::new();
    if quick(v, k, k_check, &mut out, &mut k) {
        out.decpt = k + 1;
        return out;
    }
    let integral = exp2 + mantissa.trailing_zeros() as i32 >= 0;
    if integral && (0..=SMALL_INT_MAX_K).contains(&k) {
        small_integer(v, &mut out, &mut k);
    } else {
        exact(mantissa, exp2, &mut out, &mut k);
    }
    out.decpt = k + 1;
    out
}

/// Gay's estimate of `floor(log10(v))`, from a first-order expansion of the logarithm around
/// 1.5, computed in doubles exactly as `dtoa` does. The estimate is never too small and at most
/// one too large. When it lies in `0..=22` it is corrected against the exact power of ten and
/// the second result is false; otherwise the second result is true ("may be one too large").
fn estimate_decimal_exponent(v: f64, biased: i32, fraction: u64) -> (i32, bool) {
    let (d2, log2) = if biased != 0 {
        // The mantissa scaled into [1, 2).
        (f64::from_bits(fraction | (1023 << 52)), biased - 1023)
    } else {
        // A subnormal: its leading 32 bits as an integer, scaled by 2^-31 into [1, 2).
        let nbits = 64 - fraction.leading_zeros() as i32;
        let top32 = if nbits > 32 {
            fraction >> (nbits - 32)
        } else {
            fraction << (32 - nbits)
        } as u32;
        (
            f64::from_bits(f64::from(top32).to_bits() - (31 << 52)),
            nbits - 1075,
        )
    };
    // log10(v) ~ log10(1.5) + (d2 - 1.5) / (1.5 ln 10) + log2 * log10(2), with dtoa's constants
    // (log10(1.5) rounded up by 1e-13 so that the estimate errs on the large side).
    let ds = (d2 - 1.5) * LOG10_E_OVER_1_5 + LOG10_1_5_UP + f64::from(log2) * LOG10_2_DTOA;
    let mut k = ds as i32;
    if ds < 0.0 && ds != f64::from(k) {
        k -= 1;
    }
    match usize::try_from(k).ok().and_then(|i| TENS.get(i)) {
        Some(&ten_k) => {
            if v < ten_k {
                k -= 1;
            }
            (k, false)
        }
        None => (k, true),
    }
}

/// Gay's quick path: digits from double arithmetic with an error bound. Returns false when the
/// bound cannot decide the rounding (`out` and `k` are then unchanged).
fn quick(v: f64, k0: i32, k_check: bool, out: &mut Digits, k: &mut i32) -> bool {
    let mut k1 = k0;
    let mut u = v;
    let mut ieps: i32 = 2;
    if k0 > 0 {
        let mut j = k0 >> 4;
        if j & 0x10 != 0 {
            // Divide by 10^256 first so that the scaling cannot overflow.
            j &= 0xf;
            u /= BIG_TENS[4];
            ieps += 1;
        }
        let ds = times_big_tens(TENS[(k0 & 0xf) as usize], j, &mut ieps);
        u /= ds;
    } else if k0 < 0 {
        let j1 = -k0;
        u = times_big_tens(u * TENS[(j1 & 0xf) as usize], j1 >> 4, &mut ieps);
    }
    if k_check && u < 1.0 {
        // The estimate was one too large.
        k1 -= 1;
        u *= 10.0;
        ieps += 1;
    }
    // eps = (ieps * u + 7) * 2^-52: the error bound in units of the last digit after scaling.
    let eps = f64::from(ieps) * u + 7.0;
    let eps = f64::from_bits(eps.to_bits() - (52 << 52)) * TENS[PRECISION - 1];

    let mut digits = Digits::new();
    let mut ilim = PRECISION;
    let mut i = 1;
    loop {
        let l = u as i32;
        u -= f64::from(l);
        if u == 0.0 {
            ilim = i;
        }
        digits.push(b'0'.wrapping_add(l as u8));
        if i == ilim {
            if u > 0.5 + eps {
                digits.round_up(&mut k1);
            } else if u < 0.5 - eps {
                digits.strip_zeros();
            } else {
                return false;
            }
            *out = digits;
            *k = k1;
            return true;
        }
        i += 1;
        u *= 10.0;
    }
}

/// `x` multiplied, in turn, by `10^(16 * 2^i)` for each bit `i` set in `bits` (lowest first),
/// counting each rounding error in `ieps`.
fn times_big_tens(mut x: f64, mut bits: i32, ieps: &mut i32) -> f64 {
    for &ten in &BIG_TENS {
        if bits == 0 {
            break;
        }
        if bits & 1 != 0 {
            *ieps += 1;
            x *= ten;
        }
        bits >>= 1;
    }
    x
}

/// Gay's small-integer step for an integer-valued `v < 10^15` whose decimal exponent `k` is
/// exact: digits by division by `10^k` in doubles, which is exact here. A tie rounds to even; a
/// rounding down keeps the trailing zeros of the 12 digits.
fn small_integer(v: f64, out: &mut Digits, k: &mut i32) {
    let ds = TENS[*k as usize];
    let mut u = v;
    let mut i = 1;
    loop {
        let l = (u / ds) as i32;
        u -= f64::from(l) * ds;
        out.push(b'0'.wrapping_add(l as u8));
        if u == 0.0 {
            return;
        }
        if i == PRECISION {
            u += u;
            if u > ds || (u == ds && l & 1 == 1) {
                out.round_up(k);
            }
            return;
        }
        i += 1;
        u *= 10.0;
    }
}

/// Gay's exact step, `v = mantissa * 2^exp2`: digits of `v / 10^k` by long division of big
/// integers, rounded half to even, trailing zeros stripped. `k` is the estimated exponent and
/// is corrected here.
fn exact(mantissa: u64, exp2: i32, out: &mut Digits, k: &mut i32) {
    // b / s = v / 10^k = mantissa * 2^(exp2 - k) * 5^-k.
    let mut b = Big::from_u64(mantissa);
    let mut s = Big::from_u64(1);
    if *k >= 0 {
        s.mul_pow5(k.unsigned_abs());
    } else {
        b.mul_pow5(k.unsigned_abs());
    }
    let twos = exp2 - *k;
    if twos >= 0 {
        b.shl(twos.unsigned_abs());
    } else {
        s.shl(twos.unsigned_abs());
    }
    // Make 1 <= b / s < 10.
    while b.cmp(&s) == Ordering::Less {
        *k -= 1;
        b.mul_small(10);
    }
    loop {
        let mut s10 = s.clone();
        s10.mul_small(10);
        if b.cmp(&s10) == Ordering::Less {
            break;
        }
        s = s10;
        *k += 1;
    }
    let mut digit = 0;
    for i in 1..=PRECISION {
        digit = 0u8;
        while b.cmp(&s) != Ordering::Less {
            b.sub_assign(&s);
            digit += 1;
        }
        out.push(b'0' + digit);
        if b.is_zero() {
            return;
        }
        if i < PRECISION {
            b.mul_small(10);
        }
    }
    b.shl(1);
    match b.cmp(&s) {
        Ordering::Greater => out.round_up(k),
        Ordering::Equal if digit & 1 == 1 => out.round_up(k),
        _ => out.strip_zeros(),
    }
}

/// A nonnegative big integer: 32-bit limbs, least significant first, no zero limb on top.
#[derive(Clone)]
struct Big {
    limbs: Vec<u32>,
}

impl Big {
    fn from_u64(v: u64) -> Self {
        let mut limbs = Vec::with_capacity(40);
        limbs.push(v as u32);
        limbs.push((v >> 32) as u32);
        let mut big = Big { limbs };
        big.trim();
        big
    }

    fn trim(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.limbs.is_empty()
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.limbs {
            let t = u64::from(*limb) * u64::from(m) + carry;
            *limb = t as u32;
            carry = t >> 32;
        }
        if carry != 0 {
            self.limbs.push(carry as u32);
        }
        self.trim();
    }

    fn mul_pow5(&mut self, mut n: u32) {
        // 5^13 is the largest power of five below 2^32.
        while n >= 13 {
            self.mul_small(1_220_703_125);
            n -= 13;
        }
        self.mul_small(5u32.pow(n));
    }

    fn shl(&mut self, bits: u32) {
        if self.is_zero() {
            return;
        }
        let words = (bits / 32) as usize;
        let shift = bits % 32;
        if shift != 0 {
            let mut carry = 0u32;
            for limb in &mut self.limbs {
                let next = *limb >> (32 - shift);
                *limb = (*limb << shift) | carry;
                carry = next;
            }
            if carry != 0 {
                self.limbs.push(carry);
            }
        }
        if words > 0 {
            self.limbs.splice(0..0, core::iter::repeat_n(0, words));
        }
    }

    fn cmp(&self, other: &Big) -> Ordering {
        self.limbs
            .len()
            .cmp(&other.limbs.len())
            .then_with(|| self.limbs.iter().rev().cmp(other.limbs.iter().rev()))
    }

    /// `self -= other`; requires `self >= other`.
    fn sub_assign(&mut self, other: &Big) {
        let mut borrow = false;
        for (i, limb) in self.limbs.iter_mut().enumerate() {
            let o = other.limbs.get(i).copied().unwrap_or(0);
            if o == 0 && !borrow && i >= other.limbs.len() {
                break;
            }
            let (d1, b1) = limb.overflowing_sub(o);
            let (d2, b2) = d1.overflowing_sub(u32::from(borrow));
            *limb = d2;
            borrow = b1 || b2;
        }
        self.trim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits_of(v: f64) -> (alloc::string::String, i32) {
        let d = digits(v);
        (
            alloc::string::String::from_utf8(d.as_slice().to_vec()).unwrap(),
            d.decpt,
        )
    }

    #[test]
    fn each_step_of_gays_algorithm() {
        // Quick path decides: rounds up, or down with zeros stripped.
        assert_eq!(digits_of(0.1), ("1".into(), 0));
        assert_eq!(digits_of(1.0 / 3.0), ("333333333333".into(), 0));
        // A tie in an integer below 10^15: the small-integer step keeps the trailing zero.
        assert_eq!(digits_of(33798777981050.0), ("337987779810".into(), 14));
        // ... and rounds a tie on an odd digit up.
        assert_eq!(digits_of(33798777981150.0), ("337987779812".into(), 14));
        // A tie that is not an integer goes to the exact step: half to even, zeros stripped.
        assert_eq!(digits_of(123456789010.5), ("12345678901".into(), 12));
        // All nines carry into the next decade.
        assert_eq!(digits_of(999999999999.5), ("1".into(), 13));
    }

    /// For integer values the quick path's error bound is far below the spacing of their
    /// possible remainders (at least 1/1000 of a unit in the 12th digit), so it fails exactly
    /// at ties: the trailing zeros that the small-integer step keeps come only from ties.
    #[test]
    fn quick_path_fails_on_integers_exactly_at_ties() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..20_000 {
            // A cheap LCG is enough to pick 12-digit prefixes.
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let prefix = 100_000_000_000 + (x >> 20) % 900_000_000_000;
            for j in 1..=3u32 {
                let tie = prefix * 10u64.pow(j) + 5 * 10u64.pow(j - 1);
                for v in tie - 2..=tie + 2 {
                    let v = v as f64;
                    let (k, k_check) = estimate_decimal_exponent(
                        v,
                        ((v.to_bits() >> 52) & 0x7ff) as i32,
                        v.to_bits() & ((1 << 52) - 1),
                    );
                    let decided = quick(v, k, k_check, &mut Digits::new(), &mut 0);
                    assert_eq!(decided, v != tie as f64, "{v}");
                }
            }
        }
    }

    #[test]
    fn big_integer_arithmetic() {
        let mut a = Big::from_u64(u64::MAX);
        a.mul_small(10);
        a.shl(70);
        let mut b = a.clone();
        b.mul_small(3);
        b.sub_assign(&a);
        b.sub_assign(&a);
        assert_eq!(b.cmp(&a), Ordering::Equal);
        b.sub_assign(&a);
        assert!(b.is_zero());
        let mut p = Big::from_u64(1);
        p.mul_pow5(30);
        assert_eq!(p.limbs, [0x19d3_b7a9, 0x7cb2_7341, 0x32]);
    }
}
