//! Network names as users write them, and the data directory's folder for each.

use bitcoin::Network;

/// Parses a network name: `mainnet` (or `bitcoin`, `main`), `testnet` (or `testnet3`, `test`),
/// `testnet4`, `signet`, `regtest`.
pub fn parse(s: &str) -> Result<Network, String> {
    match s.to_ascii_lowercase().as_str() {
        "mainnet" | "bitcoin" | "main" => Ok(Network::Bitcoin),
        "testnet" | "testnet3" | "test" => Ok(Network::Testnet),
        "testnet4" => Ok(Network::Testnet4),
        "signet" => Ok(Network::Signet),
        "regtest" => Ok(Network::Regtest),
        _ => Err(format!(
            "{s:?} is not a network: mainnet, testnet, testnet4, signet or regtest"
        )),
    }
}

/// The folder of `network` in the data directory (Bitcoin Core's names where it has them).
pub fn dir_name(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "mainnet",
        Network::Testnet => "testnet3",
        Network::Testnet4 => "testnet4",
        Network::Signet => "signet",
        _ => "regtest",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_every_network_parses() {
        for (s, n) in [
            ("mainnet", Network::Bitcoin),
            ("bitcoin", Network::Bitcoin),
            ("Main", Network::Bitcoin),
            ("testnet", Network::Testnet),
            ("testnet3", Network::Testnet),
            ("testnet4", Network::Testnet4),
            ("signet", Network::Signet),
            ("regtest", Network::Regtest),
        ] {
            assert_eq!(parse(s), Ok(n), "{s}");
        }
        assert!(parse("litecoin").is_err());
        assert_eq!(dir_name(Network::Testnet4), "testnet4");
    }
}
