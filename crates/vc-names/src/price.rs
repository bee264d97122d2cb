//! Prices: of a name under its namespace's pricing function, and of a namespace by the length of
//! its id. Integer arithmetic only (consensus code).

use crate::wire::NamespaceParams;

/// The smallest name price, and the unit a name price is multiplied by, in satoshis.
pub const NAME_PRICE_UNIT: u64 = 100;

/// Namespace prices by id length, in satoshis: 1 character, 2 to 3, 4 to 7, 8 to 19.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespacePrices(pub [u64; 4]);

impl NamespacePrices {
    /// Mainnet BNS: 400, 40, 4 and 0.4 BTC.
    pub const MAINNET: NamespacePrices =
        NamespacePrices([40_000_000_000, 4_000_000_000, 400_000_000, 40_000_000]);

    /// A regtest deployment: the mainnet prices divided by 100,000 (0.004 BTC for a
    /// one-character id down to 400 satoshis for a long one).
    pub const REGTEST: NamespacePrices = NamespacePrices([400_000, 40_000, 4_000, 400]);

    /// The price of a namespace whose id has `len` characters.
    pub fn price(&self, len: usize) -> u64 {
        match len {
            0 | 1 => self.0[0],
            2..=3 => self.0[1],
            4..=7 => self.0[2],
            _ => self.0[3],
        }
    }
}

/// The price of `name` (the part before the dot) under `params`, in satoshis:
/// `max(coeff * base^e * 100 / discount, 100)` with `e = buckets[min(len, 16) - 1]` and
/// `discount = max(no-vowel discount if the name has no vowel, non-alpha discount if it has a
/// digit, '-' or '_', 1)`.
///
/// Blockstack computed this in floating point as `coeff * base^e / discount * 100`; here the
/// division comes last and rounds down, which is exact whenever the float was. A price that does
/// not fit in 64 bits is `u64::MAX` (unpayable).
pub fn name_price(name: &str, params: &NamespaceParams) -> u64 {
    let len = name.len().clamp(1, 16);
    let exponent = u32::from(params.buckets[len - 1]);
    let has_vowel = name.bytes().any(|b| b"aeiouy".contains(&b));
    let nonalpha = name
        .bytes()
        .any(|b| b.is_ascii_digit() || b == b'-' || b == b'_');
    let mut discount = 1u128;
    if !has_vowel {
        discount = discount.max(u128::from(params.no_vowel_discount));
    }
    if nonalpha {
        discount = discount.max(u128::from(params.nonalpha_discount));
    }
    let price = u128::from(params.coeff)
        .checked_mul(
            u128::from(params.base)
                .checked_pow(exponent)
                .unwrap_or(u128::MAX),
        )
        .and_then(|p| p.checked_mul(u128::from(NAME_PRICE_UNIT)))
        .map(|p| p / discount)
        .unwrap_or(u128::MAX);
    u64::try_from(price)
        .unwrap_or(u64::MAX)
        .max(NAME_PRICE_UNIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> NamespaceParams {
        crate::scenario::test_namespace_params()
    }

    #[test]
    fn longer_and_nonalpha_names_are_cheaper() {
        let p = params();
        assert_eq!(name_price("a", &p), 4 * 4096 * 100);
        assert_eq!(name_price("ab", &p), 4 * 1024 * 100);
        assert!(name_price("abcdef", &p) < name_price("abc", &p));
        assert_eq!(name_price("abcdefgh", &p), 400);
        // A digit: divided by 10. No vowel: by 5. Both: the larger discount.
        assert_eq!(name_price("ab1", &p), 4 * 256 * 100 / 10);
        assert_eq!(name_price("bcd", &p), 4 * 256 * 100 / 5);
        assert_eq!(name_price("bc1", &p), 4 * 256 * 100 / 10);
        // Never below 100.
        assert_eq!(name_price("abcdefgh1", &p), 100);
    }

    #[test]
    fn overflow_is_unpayable() {
        let mut p = params();
        p.coeff = 255;
        p.base = 255;
        p.buckets = [15; 16];
        assert_eq!(name_price("a", &p), u64::MAX);
    }

    #[test]
    fn namespace_prices_by_length() {
        let p = NamespacePrices::MAINNET;
        assert_eq!(p.price(1), 40_000_000_000);
        assert_eq!(p.price(3), 4_000_000_000);
        assert_eq!(p.price(7), 400_000_000);
        assert_eq!(p.price(19), 40_000_000);
    }
}
