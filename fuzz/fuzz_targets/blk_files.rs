//! Arbitrary bytes as a blocks directory's first blk file and its rev file (input: the blk
//! file's length as 4 little-endian bytes, the blk file, the rev file) never panic the blk-file
//! source: opening either fails with an error naming a
//! file, or succeeds, and then every block it reports on the best chain can be read or fails
//! cleanly.
#![no_main]

use bitcoin::Network;
use libfuzzer_sys::fuzz_target;
use vc_source::{BlockSource, ChainView};
use vc_source::blk::{BlkConfig, BlkSource};

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let cut = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (blk, rev) = rest.split_at(cut);
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::write(dir.path().join("blk00000.dat"), blk).is_err()
        || std::fs::write(dir.path().join("rev00000.dat"), rev).is_err()
    {
        return;
    }
    let mut config = BlkConfig::new(dir.path(), Network::Regtest);
    config.threads = 1;
    let Ok(source) = BlkSource::open(config) else {
        return;
    };
    if let Ok(tip) = source.tip() {
        for h in 0..=tip.height {
            if let Ok(hash) = source.block_hash(h)
                && let Ok(f) = source.block(&hash)
            {
                assert_eq!(f.block.block_hash(), hash);
                let _ = source.spent_outputs(&hash, &f.block);
            }
        }
    }
});
