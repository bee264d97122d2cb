//! A header chain validated the way a full node validates headers: each header links to its
//! parent, its proof of work meets its target, its target follows the network's difficulty
//! rules (retargets every 2016 blocks, testnet's and regtest's minimum-difficulty blocks,
//! regtest's no-retarget rule, testnet4's BIP94 variant) and its timestamp is above the median of
//! the eleven before it.
//!
//! Pure data and arithmetic, no I/O: the Electrum source feeds it what the server says, and
//! nothing enters the chain before it passes every check.

use bitcoin::block::Header;
use bitcoin::consensus::Params;
use bitcoin::pow::{CompactTarget, Target};
use bitcoin::{BlockHash, Network};

use crate::error::{SourceError, Violation};

/// A validated header chain from the genesis block.
#[derive(Clone, Debug)]
pub struct HeaderChain {
    network: Network,
    params: Params,
    headers: Vec<Header>,
    hashes: Vec<BlockHash>,
}

/// The number of earlier timestamps whose median a header's time must exceed.
const MEDIAN_SPAN: usize = 11;

impl HeaderChain {
    /// A chain holding only `network`'s genesis header.
    pub fn new(network: Network) -> HeaderChain {
        let genesis = bitcoin::constants::genesis_block(network).header;
        HeaderChain {
            network,
            params: Params::new(network),
            hashes: vec![genesis.block_hash()],
            headers: vec![genesis],
        }
    }

    /// A chain of headers validated earlier (read back from
    /// [`super::ElectrumConfig::header_cache`]): `headers` from the genesis block, each linked
    /// to the one below it, with their `hashes`. Every header but the last is vouched for by
    /// its successor; the last one is validated again by every rule, and left out if it fails.
    pub(crate) fn from_validated(
        network: Network,
        mut headers: Vec<Header>,
        mut hashes: Vec<BlockHash>,
    ) -> HeaderChain {
        let genesis = bitcoin::constants::genesis_block(network).header;
        if headers.first() != Some(&genesis) || hashes.len() != headers.len() {
            return HeaderChain::new(network);
        }
        let last = (headers.len() > 1).then(|| (headers.pop(), hashes.pop()));
        let mut chain = HeaderChain {
            network,
            params: Params::new(network),
            headers,
            hashes,
        };
        if let Some((Some(last), _)) = last {
            let below = chain.tip_height();
            if let Err(e) = chain.connect("electrum", below, &[last]) {
                tracing::warn!(error = %e, "the header cache's tip fails validation; dropped");
            }
        }
        chain
    }

    /// The headers from the genesis block to the tip.
    pub(crate) fn all(&self) -> &[Header] {
        &self.headers
    }

    /// The network.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The tip's height.
    pub fn tip_height(&self) -> u64 {
        self.headers.len() as u64 - 1
    }

    /// The tip's hash.
    pub fn tip_hash(&self) -> BlockHash {
        self.hashes[self.hashes.len() - 1]
    }

    /// The header at `height`, if the chain reaches it.
    pub fn header(&self, height: u64) -> Option<&Header> {
        usize::try_from(height)
            .ok()
            .and_then(|h| self.headers.get(h))
    }

    /// The hash at `height`, if the chain reaches it.
    pub fn hash(&self, height: u64) -> Option<BlockHash> {
        usize::try_from(height)
            .ok()
            .and_then(|h| self.hashes.get(h))
            .copied()
    }

    /// Validates `headers` as the blocks `fork + 1 ..` on top of this chain's block at `fork`
    /// and, when all pass, replaces everything above `fork` with them. Returns how many blocks
    /// were replaced. On any failure the chain is unchanged.
    pub fn connect(
        &mut self,
        source_name: &'static str,
        fork: u64,
        headers: &[Header],
    ) -> Result<u64, SourceError> {
        let fork_index = usize::try_from(fork)
            .ok()
            .filter(|&f| f < self.headers.len())
            .ok_or_else(|| SourceError::Mismatch {
                source_name,
                detail: format!(
                    "fork point {fork} is above the validated tip {}",
                    self.tip_height()
                ),
            })?;
        // Validate against a view of the chain up to the fork plus the new headers so far.
        let mut new_hashes = Vec::with_capacity(headers.len());
        for (i, header) in headers.iter().enumerate() {
            let height = fork + 1 + i as u64;
            let view = View {
                base: &self.headers[..=fork_index],
                base_hashes: &self.hashes[..=fork_index],
                extra: &headers[..i],
                extra_hashes: &new_hashes,
            };
            let hash = self.check(source_name, &view, height, header)?;
            new_hashes.push(hash);
        }
        let replaced = self.tip_height() - fork;
        self.headers.truncate(fork_index + 1);
        self.hashes.truncate(fork_index + 1);
        self.headers.extend_from_slice(headers);
        self.hashes.extend(new_hashes);
        Ok(replaced)
    }

    /// Every rule for `header` at `height` on top of `view` (which ends at `height - 1`).
    fn check(
        &self,
        source_name: &'static str,
        view: &View<'_>,
        height: u64,
        header: &Header,
    ) -> Result<BlockHash, SourceError> {
        let fail = |violation, detail: String| SourceError::Unverified {
            source_name,
            height,
            violation,
            detail,
        };
        let prev_hash = view.hash(height - 1);
        if header.prev_blockhash != prev_hash {
            return Err(fail(
                Violation::HeaderLink,
                format!(
                    "its parent is {}, but the block below it is {prev_hash}",
                    header.prev_blockhash
                ),
            ));
        }
        let expected = self.expected_bits(view, height, header);
        if header.bits != expected {
            return Err(fail(
                Violation::Difficulty,
                format!(
                    "bits {:#010x}, the difficulty rules require {:#010x}",
                    header.bits.to_consensus(),
                    expected.to_consensus()
                ),
            ));
        }
        let target = Target::from_compact(header.bits);
        if target > self.params.max_attainable_target || target == Target::ZERO {
            return Err(fail(
                Violation::ProofOfWork,
                format!("target {target:x} is outside the network's limit"),
            ));
        }
        let hash = header.validate_pow(target).map_err(|_| {
            fail(
                Violation::ProofOfWork,
                format!(
                    "hash {} does not meet its target {target:x}",
                    header.block_hash()
                ),
            )
        })?;
        let median = view.median_time_past(height);
        if header.time <= median {
            return Err(fail(
                Violation::Timestamp,
                format!(
                    "time {} is not above the median {median} of the 11 blocks before it",
                    header.time
                ),
            ));
        }
        Ok(hash)
    }

    /// The bits the block at `height` (whose header is `header`) must carry, as Bitcoin Core's
    /// `GetNextWorkRequired` computes them.
    fn expected_bits(&self, view: &View<'_>, height: u64, header: &Header) -> CompactTarget {
        let p = &self.params;
        let interval = p.difficulty_adjustment_interval();
        let prev = view.header(height - 1);
        let limit = p.max_attainable_target.to_compact_lossy();
        if !height.is_multiple_of(interval) {
            if p.allow_min_difficulty_blocks {
                // A block more than twice the target spacing after its parent may use the
                // minimum difficulty; otherwise it carries the last "real" difficulty.
                if u64::from(header.time) > u64::from(prev.time) + 2 * p.pow_target_spacing {
                    return limit;
                }
                let mut h = height - 1;
                while h > 0 && !h.is_multiple_of(interval) && view.header(h).bits == limit {
                    h -= 1;
                }
                return view.header(h).bits;
            }
            return prev.bits;
        }
        if p.no_pow_retargeting {
            return prev.bits;
        }
        let first = view.header(height - interval);
        let timespan = u64::from(prev.time.saturating_sub(first.time));
        // BIP94 (testnet4) retargets from the period's first block's bits, which closes the
        // minimum-difficulty loophole at period boundaries.
        let base = if self.network == Network::Testnet4 {
            first.bits
        } else {
            prev.bits
        };
        CompactTarget::from_next_work_required(base, timespan, p)
    }
}

/// The chain up to a fork point plus candidate headers above it, indexed by height.
struct View<'a> {
    base: &'a [Header],
    base_hashes: &'a [BlockHash],
    extra: &'a [Header],
    extra_hashes: &'a [BlockHash],
}

impl View<'_> {
    fn header(&self, height: u64) -> &Header {
        let h = height as usize;
        if h < self.base.len() {
            &self.base[h]
        } else {
            &self.extra[h - self.base.len()]
        }
    }

    fn hash(&self, height: u64) -> BlockHash {
        let h = height as usize;
        if h < self.base_hashes.len() {
            self.base_hashes[h]
        } else {
            self.extra_hashes[h - self.base_hashes.len()]
        }
    }

    /// The median time of the (up to) 11 blocks below `height`.
    fn median_time_past(&self, height: u64) -> u32 {
        let from = height.saturating_sub(MEDIAN_SPAN as u64);
        let mut times: Vec<u32> = (from..height).map(|h| self.header(h).time).collect();
        times.sort_unstable();
        times[times.len() / 2]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use bitcoin::TxMerkleNode;
    use bitcoin::block::Version;
    use bitcoin::hashes::Hash;

    /// Mines a regtest header on `prev` (regtest's target is met by about half of all hashes).
    fn mine(prev: &Header, time: u32, bits: CompactTarget) -> Header {
        let mut h = Header {
            version: Version::from_consensus(0x2000_0000),
            prev_blockhash: prev.block_hash(),
            merkle_root: TxMerkleNode::from_byte_array([7; 32]),
            time,
            bits,
            nonce: 0,
        };
        while h.validate_pow(Target::from_compact(bits)).is_err() {
            h.nonce += 1;
        }
        h
    }

    fn regtest_chain(n: usize) -> Vec<Header> {
        let genesis = bitcoin::constants::genesis_block(Network::Regtest).header;
        let mut out = Vec::new();
        let mut prev = genesis;
        for i in 0..n {
            let h = mine(&prev, genesis.time + 1 + i as u32, genesis.bits);
            out.push(h);
            prev = h;
        }
        out
    }

    fn violation(e: SourceError) -> Violation {
        match e {
            SourceError::Unverified { violation, .. } => violation,
            other => panic!("expected a verification failure, got {other}"),
        }
    }

    #[test]
    fn accepts_a_valid_regtest_chain_and_reorgs() {
        let mut chain = HeaderChain::new(Network::Regtest);
        let headers = regtest_chain(30);
        assert_eq!(chain.connect("t", 0, &headers).unwrap(), 0);
        assert_eq!(chain.tip_height(), 30);
        assert_eq!(chain.hash(30), Some(headers[29].block_hash()));
        // A longer branch from height 25 replaces five blocks.
        let mut prev = headers[24];
        let mut branch = Vec::new();
        for i in 0..7 {
            let h = mine(&prev, prev.time + 2 + i, prev.bits);
            branch.push(h);
            prev = h;
        }
        assert_eq!(chain.connect("t", 25, &branch).unwrap(), 5);
        assert_eq!(chain.tip_height(), 32);
        assert_eq!(chain.hash(26), Some(branch[0].block_hash()));
    }

    #[test]
    fn rejects_each_broken_rule_and_keeps_the_chain() {
        let mut chain = HeaderChain::new(Network::Regtest);
        let good = regtest_chain(20);
        chain.connect("t", 0, &good[..10]).unwrap();

        let mut unlinked = good[10..].to_vec();
        unlinked[3].prev_blockhash = BlockHash::all_zeros();
        assert_eq!(
            violation(chain.connect("t", 10, &unlinked).unwrap_err()),
            Violation::HeaderLink
        );

        let mut bad_pow = good[10..].to_vec();
        while bad_pow[0].validate_pow(bad_pow[0].target()).is_ok() {
            bad_pow[0].nonce += 1;
        }
        assert_eq!(
            violation(chain.connect("t", 10, &bad_pow).unwrap_err()),
            Violation::ProofOfWork
        );

        let mut bad_bits = good[10..].to_vec();
        bad_bits[0] = mine(
            &good[9],
            good[9].time + 1,
            CompactTarget::from_consensus(0x1f7f_ffff),
        );
        assert_eq!(
            violation(chain.connect("t", 10, &bad_bits).unwrap_err()),
            Violation::Difficulty
        );

        let old = mine(&good[9], good[0].time, good[9].bits);
        assert_eq!(
            violation(chain.connect("t", 10, &[old]).unwrap_err()),
            Violation::Timestamp
        );

        assert_eq!(chain.tip_height(), 10);
        assert_eq!(chain.tip_hash(), good[9].block_hash());
        chain.connect("t", 10, &good[10..]).unwrap();
        assert_eq!(chain.tip_height(), 20);
    }

    #[test]
    fn mainnet_rules_retarget_and_forbid_min_difficulty() {
        // Mainnet's pre-retarget rule: every block carries its parent's bits; a made-up easier
        // target fails on difficulty before the (unmineable here) proof of work is looked at.
        let mut chain = HeaderChain::new(Network::Bitcoin);
        let genesis = *chain.header(0).unwrap();
        let mut easy = genesis;
        easy.prev_blockhash = genesis.block_hash();
        easy.time = genesis.time + 7200;
        easy.bits = CompactTarget::from_consensus(0x207f_ffff);
        assert_eq!(
            violation(chain.connect("t", 0, &[easy]).unwrap_err()),
            Violation::Difficulty
        );
        let mut same_bits = easy;
        same_bits.bits = genesis.bits;
        assert_eq!(
            violation(chain.connect("t", 0, &[same_bits]).unwrap_err()),
            Violation::ProofOfWork
        );
        // The first retarget: blocks 0..2015 took twice the target time, so block 2016's
        // target doubles (clamped by the factor-4 rule, capped at the limit: mainnet's first
        // retarget kept the limit).
        let p = Params::new(Network::Bitcoin);
        let doubled = CompactTarget::from_next_work_required(
            CompactTarget::from_consensus(0x1b04_864c),
            p.pow_target_timespan * 2,
            &p,
        );
        assert_eq!(
            Target::from_compact(doubled),
            Target::from_compact(CompactTarget::from_consensus(0x1b09_0c98))
        );
    }

    #[test]
    fn testnet_allows_min_difficulty_after_twenty_minutes_only() {
        // Testnet3 genesis has the limit's bits; a block 20 minutes later may use the limit,
        // and a quick block after a limit block must carry the last real difficulty (here the
        // genesis block's, which is the limit as well): both resolve to the limit.
        let chain = HeaderChain::new(Network::Testnet);
        let genesis = *chain.header(0).unwrap();
        let view = View {
            base: &chain.headers,
            base_hashes: &chain.hashes,
            extra: &[],
            extra_hashes: &[],
        };
        let mut late = genesis;
        late.time = genesis.time + 1201;
        assert_eq!(
            chain.expected_bits(&view, 1, &late),
            Params::new(Network::Testnet)
                .max_attainable_target
                .to_compact_lossy()
        );
    }
}
