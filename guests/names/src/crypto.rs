//! What the naming rules hash and render, in plain `core`: SHA-256, RIPEMD-160, hex, and
//! Bitcoin addresses (base58check and bech32/bech32m), as rust-bitcoin renders them natively.

use alloc::string::String;
use alloc::vec::Vec;

static K256: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The message padded to whole 64-byte blocks, with its bit length appended big-endian
/// (SHA-256) or little-endian (RIPEMD-160).
fn padded(data: &[u8], big_endian: bool) -> Vec<u8> {
    let mut m = Vec::with_capacity(data.len() + 72);
    m.extend_from_slice(data);
    m.push(0x80);
    while m.len() % 64 != 56 {
        m.push(0);
    }
    let bits = (data.len() as u64).wrapping_mul(8);
    if big_endian {
        m.extend_from_slice(&bits.to_be_bytes());
    } else {
        m.extend_from_slice(&bits.to_le_bytes());
    }
    m
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let m = padded(data, true);
    let mut w = [0u32; 64];
    for block in m.chunks(64) {
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K256[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// SHA-256 of SHA-256.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    sha256(&sha256(data))
}

static RMD_R: [u8; 80] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5,
    2, 14, 11, 8, 3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12, 1, 9, 11, 10, 0, 8, 12, 4,
    13, 3, 7, 15, 14, 5, 6, 2, 4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13,
];
static RMD_RP: [u8; 80] = [
    5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12, 6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12,
    4, 9, 1, 2, 15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13, 8, 6, 4, 1, 3, 11, 15, 0, 5,
    12, 2, 13, 9, 7, 10, 14, 12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11,
];
static RMD_S: [u8; 80] = [
    11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8, 7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15,
    9, 11, 7, 13, 12, 11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5, 11, 12, 14, 15, 14,
    15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12, 9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6,
];
static RMD_SP: [u8; 80] = [
    8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6, 9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12,
    7, 6, 15, 13, 11, 9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5, 15, 5, 8, 11, 14, 14,
    6, 14, 6, 9, 12, 9, 12, 5, 15, 8, 8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11,
];
static RMD_K: [u32; 5] = [0x00000000, 0x5a827999, 0x6ed9eba1, 0x8f1bbcdc, 0xa953fd4e];
static RMD_KP: [u32; 5] = [0x50a28be6, 0x5c4dd124, 0x6d703ef3, 0x7a6d76e9, 0x00000000];

/// RIPEMD-160's five boolean functions, by round.
fn rmd_f(round: usize, x: u32, y: u32, z: u32) -> u32 {
    match round {
        0 => x ^ y ^ z,
        1 => (x & y) | (!x & z),
        2 => (x | !y) ^ z,
        3 => (x & z) | (y & !z),
        _ => x ^ (y | !z),
    }
}

/// One of RIPEMD-160's five rounds (sixteen steps) on both lines; `l` and `r` are the lines'
/// `(a, b, c, d, e)`. A const round number lets the compiler pick the boolean functions and
/// constants once per round.
#[inline(always)]
fn rmd_round<const ROUND: usize>(l: &mut [u32; 5], r: &mut [u32; 5], x: &[u32; 16]) {
    for k in 0..16 {
        let j = ROUND * 16 + k;
        let t = l[0]
            .wrapping_add(rmd_f(ROUND, l[1], l[2], l[3]))
            .wrapping_add(x[usize::from(RMD_R[j]) & 15])
            .wrapping_add(RMD_K[ROUND])
            .rotate_left(u32::from(RMD_S[j]))
            .wrapping_add(l[4]);
        *l = [l[4], t, l[1], l[2].rotate_left(10), l[3]];
        let t = r[0]
            .wrapping_add(rmd_f(4 - ROUND, r[1], r[2], r[3]))
            .wrapping_add(x[usize::from(RMD_RP[j]) & 15])
            .wrapping_add(RMD_KP[ROUND])
            .rotate_left(u32::from(RMD_SP[j]))
            .wrapping_add(r[4]);
        *r = [r[4], t, r[1], r[2].rotate_left(10), r[3]];
    }
}

/// RIPEMD-160.
pub fn ripemd160(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
    let m = padded(data, false);
    let mut x = [0u32; 16];
    for block in m.chunks_exact(64) {
        for (w, word) in x.iter_mut().zip(block.chunks_exact(4)) {
            *w = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
        let (mut l, mut r) = (h, h);
        rmd_round::<0>(&mut l, &mut r, &x);
        rmd_round::<1>(&mut l, &mut r, &x);
        rmd_round::<2>(&mut l, &mut r, &x);
        rmd_round::<3>(&mut l, &mut r, &x);
        rmd_round::<4>(&mut l, &mut r, &x);
        let t = h[1].wrapping_add(l[2]).wrapping_add(r[3]);
        h[1] = h[2].wrapping_add(l[3]).wrapping_add(r[4]);
        h[2] = h[3].wrapping_add(l[4]).wrapping_add(r[0]);
        h[3] = h[4].wrapping_add(l[0]).wrapping_add(r[1]);
        h[4] = h[0].wrapping_add(l[1]).wrapping_add(r[2]);
        h[0] = t;
    }
    let mut out = [0u8; 20];
    for (o, v) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// RIPEMD-160 of SHA-256.
pub fn hash160(data: &[u8]) -> [u8; 20] {
    ripemd160(&sha256(data))
}

/// Lowercase hex. (Written as bytes, then checked as UTF-8 once: pushing `char`s one at a
/// time costs several times more in the interpreter.)
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = alloc::vec![0u8; bytes.len() * 2];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
    String::from_utf8(out).unwrap_or_default()
}

const BASE58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Base58 of `payload` followed by the first four bytes of its SHA-256d.
fn base58check(payload: &[u8]) -> String {
    let mut data = payload.to_vec();
    data.extend_from_slice(&sha256d(payload)[..4]);
    // Little-endian base-58 digits, grown by multiply-and-add.
    let mut digits: Vec<u8> = Vec::new();
    for &byte in &data {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            let x = u32::from(*d) * 256 + carry;
            *d = (x % 58) as u8;
            carry = x / 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    let mut s = String::with_capacity(zeros + digits.len());
    for _ in 0..zeros {
        s.push('1');
    }
    for &d in digits.iter().rev() {
        s.push(BASE58[usize::from(d)] as char);
    }
    s
}

const BECH32_CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn bech32_polymod(values: &[u8]) -> u32 {
    const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let mut chk: u32 = 1;
    for &v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// A segwit address: bech32 for version 0, bech32m for later versions (BIP 173, BIP 350).
fn segwit_address(hrp: &str, version: u8, program: &[u8]) -> String {
    let mut data = alloc::vec![version];
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in program {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            data.push(((acc >> bits) & 31) as u8);
        }
    }
    if bits > 0 {
        data.push(((acc << (5 - bits)) & 31) as u8);
    }
    let mut values: Vec<u8> = hrp.bytes().map(|c| c >> 5).collect();
    values.push(0);
    values.extend(hrp.bytes().map(|c| c & 31));
    values.extend_from_slice(&data);
    values.extend_from_slice(&[0; 6]);
    let constant = if version == 0 { 1 } else { 0x2bc8_30a3 };
    let checksum = bech32_polymod(&values) ^ constant;
    let mut s = String::with_capacity(hrp.len() + 1 + data.len() + 6);
    s.push_str(hrp);
    s.push('1');
    for &d in &data {
        s.push(BECH32_CHARSET[usize::from(d)] as char);
    }
    for i in 0..6 {
        s.push(BECH32_CHARSET[((checksum >> (5 * (5 - i))) & 31) as usize] as char);
    }
    s
}

/// Network bytes of the input header (`docs/vm.md` section 5).
pub const NETWORK_BITCOIN: u8 = 0;
const NETWORK_REGTEST: u8 = 4;

/// The address `script` pays on `network`, as rust-bitcoin's `Address::from_script` renders
/// it: P2PKH, P2SH, or a witness program (version 0 with 20 or 32 bytes, versions 1 to 16
/// with 2 to 40); `None` for any other script.
pub fn address(script: &[u8], network: u8) -> Option<String> {
    let main = network == NETWORK_BITCOIN;
    let n = script.len();
    if n == 25
        && script[0] == 0x76
        && script[1] == 0xa9
        && script[2] == 0x14
        && script[23] == 0x88
        && script[24] == 0xac
    {
        let mut p = alloc::vec![if main { 0x00 } else { 0x6f }];
        p.extend_from_slice(&script[3..23]);
        return Some(base58check(&p));
    }
    if n == 23 && script[0] == 0xa9 && script[1] == 0x14 && script[22] == 0x87 {
        let mut p = alloc::vec![if main { 0x05 } else { 0xc4 }];
        p.extend_from_slice(&script[2..22]);
        return Some(base58check(&p));
    }
    if !(4..=42).contains(&n) || !(2..=40).contains(&script[1]) || n - 2 != usize::from(script[1]) {
        return None;
    }
    let version = match script[0] {
        0 => 0,
        op @ 0x51..=0x60 => op - 0x50,
        _ => return None,
    };
    if version == 0 && n - 2 != 20 && n - 2 != 32 {
        return None;
    }
    let hrp = match network {
        NETWORK_BITCOIN => "bc",
        NETWORK_REGTEST => "bcrt",
        _ => "tb",
    };
    Some(segwit_address(hrp, version, &script[2..]))
}
