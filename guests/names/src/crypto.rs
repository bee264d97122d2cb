//! What the naming rules hash and render: SHA-256, SHA-256d and HASH160 (computed by the host,
//! `docs/vm.md` section 4), hex, and Bitcoin addresses (base58check and bech32/bech32m, in plain
//! `core`), as rust-bitcoin renders them natively.

use alloc::string::String;
use alloc::vec::Vec;

pub use vc_vm_guest::sys::{hash160, sha256, sha256d};

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

/// 58^5, the base of the limbs [`base58check`] computes in (the largest power of 58 below
/// 2^32).
const B58_LIMB: u64 = 656_356_768;

/// Base58 of `payload` followed by the first four bytes of its SHA-256d.
fn base58check(payload: &[u8]) -> String {
    let mut data = Vec::with_capacity(payload.len() + 4);
    data.extend_from_slice(payload);
    data.extend_from_slice(&sha256d(payload)[..4]);
    // Little-endian limbs of five base-58 digits each, grown by multiply-and-add: a fifth of
    // the steps of digit-at-a-time.
    let mut limbs: Vec<u32> = Vec::with_capacity(data.len() / 3 + 1);
    for &byte in &data {
        let mut carry = u64::from(byte);
        for limb in limbs.iter_mut() {
            let x = u64::from(*limb) * 256 + carry;
            *limb = (x % B58_LIMB) as u32;
            carry = x / B58_LIMB;
        }
        while carry > 0 {
            limbs.push((carry % B58_LIMB) as u32);
            carry /= B58_LIMB;
        }
    }
    let mut digits: Vec<u8> = Vec::with_capacity(limbs.len() * 5);
    for &limb in &limbs {
        let mut l = limb;
        for _ in 0..5 {
            digits.push((l % 58) as u8);
            l /= 58;
        }
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    let mut s = Vec::with_capacity(zeros + digits.len());
    s.resize(zeros, b'1');
    s.extend(digits.iter().rev().map(|&d| BASE58[usize::from(d)]));
    String::from_utf8(s).unwrap_or_default()
}

const BECH32_CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// BIP 173's generators.
const BECH32_GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

/// For each 5-bit value `top`, the XOR of the generators whose bit is set in `top`: what
/// BIP 173's checksum step adds, one lookup instead of five tests.
const BECH32_STEP: [u32; 32] = {
    let mut table = [0u32; 32];
    let mut top = 0;
    while top < 32 {
        let mut i = 0;
        while i < 5 {
            if (top >> i) & 1 == 1 {
                table[top] ^= BECH32_GEN[i];
            }
            i += 1;
        }
        top += 1;
    }
    table
};

fn bech32_polymod(values: &[u8]) -> u32 {
    let mut chk: u32 = 1;
    for &v in values {
        let top = (chk >> 25) as usize;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v) ^ BECH32_STEP[top];
    }
    chk
}

/// A segwit address: bech32 for version 0, bech32m for later versions (BIP 173, BIP 350).
fn segwit_address(hrp: &str, version: u8, program: &[u8]) -> String {
    // Vectors sized up front: each growth is a new allocation and a copy in the guest.
    let mut data = Vec::with_capacity(1 + (program.len() * 8 + 4) / 5);
    data.push(version);
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
    let mut values: Vec<u8> = Vec::with_capacity(2 * hrp.len() + 1 + data.len() + 6);
    values.extend(hrp.bytes().map(|c| c >> 5));
    values.push(0);
    values.extend(hrp.bytes().map(|c| c & 31));
    values.extend_from_slice(&data);
    values.extend_from_slice(&[0; 6]);
    let constant = if version == 0 { 1 } else { 0x2bc8_30a3 };
    let checksum = bech32_polymod(&values) ^ constant;
    // Written as bytes and checked as UTF-8 once (see `hex`).
    let mut s = Vec::with_capacity(hrp.len() + 1 + data.len() + 6);
    s.extend_from_slice(hrp.as_bytes());
    s.push(b'1');
    s.extend(data.iter().map(|&d| BECH32_CHARSET[usize::from(d)]));
    s.extend((0..6).map(|i| BECH32_CHARSET[((checksum >> (5 * (5 - i))) & 31) as usize]));
    String::from_utf8(s).unwrap_or_default()
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
        let mut p = Vec::with_capacity(21);
        p.push(if main { 0x00 } else { 0x6f });
        p.extend_from_slice(&script[3..23]);
        return Some(base58check(&p));
    }
    if n == 23 && script[0] == 0xa9 && script[1] == 0x14 && script[22] == 0x87 {
        let mut p = Vec::with_capacity(21);
        p.push(if main { 0x05 } else { 0xc4 });
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
