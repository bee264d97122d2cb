//! Arbitrary 80-byte chunks offered as regtest headers above the genesis block never panic the
//! header validation, and the chain only ever holds headers that link: after any attempt, each
//! stored header's parent is the stored block below it.
#![no_main]

use bitcoin::Network;
use bitcoin::block::Header;
use libfuzzer_sys::fuzz_target;
use vc_source::electrum::headers::HeaderChain;

fuzz_target!(|data: &[u8]| {
    let headers: Vec<Header> = data
        .chunks_exact(80)
        .filter_map(|c| bitcoin::consensus::deserialize(c).ok())
        .collect();
    let mut chain = HeaderChain::new(Network::Regtest);
    let result = chain.connect("fuzz", 0, &headers);
    if result.is_ok() {
        assert_eq!(chain.tip_height(), headers.len() as u64);
    } else {
        assert_eq!(chain.tip_height(), 0, "a failed connect leaves the chain unchanged");
    }
    for h in 1..=chain.tip_height() {
        let header = chain.header(h).expect("a stored header");
        assert_eq!(Some(header.prev_blockhash), chain.hash(h - 1));
    }
});
