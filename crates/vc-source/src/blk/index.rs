//! The in-memory block index of a blocks directory: every header found in the blk files, linked
//! to its parent, with its height and cumulative work, and the best chain among them.
//!
//! Blocks arrive out of order in the files (Core stores blocks as they download), so a header
//! whose parent has not been seen waits as an orphan until it shows up. The best chain ends at
//! the block with the most cumulative work; among equal work, the block stored first wins, which
//! is the order Core received them in (Core too prefers the first-seen of two equal tips).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bitcoin::block::Header;
use bitcoin::pow::Target;
use bitcoin::pow::Work;
use bitcoin::{BlockHash, Network};

use super::files::Span;

/// Where a block's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    /// The blk file number.
    pub file: u32,
    /// The record's payload.
    pub span: Span,
}

impl Loc {
    fn order(&self) -> (u32, u64) {
        (self.file, self.span.offset)
    }
}

/// A block linked to the genesis block.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub header: Header,
    pub loc: Loc,
    pub height: u64,
    /// Work of this block and all its ancestors.
    pub work: Work,
}

/// Headers found so far and the best chain.
#[derive(Debug)]
pub(crate) struct ChainIndex {
    genesis: BlockHash,
    /// The network's easiest target: a header claiming an easier one is not a block.
    max_target: Target,
    entries: HashMap<BlockHash, Entry>,
    /// Headers whose parent has not been found yet, by parent.
    orphans: HashMap<BlockHash, Vec<(Header, Loc)>>,
    /// Every hash seen (linked or orphan), to skip blocks stored twice.
    seen: HashSet<BlockHash>,
    /// The best chain by height.
    chain: Vec<BlockHash>,
    /// Linked blocks per blk file.
    by_file: BTreeMap<u32, Vec<BlockHash>>,
    /// How many linked children each block has.
    children: HashMap<BlockHash, u32>,
    /// The linked block with the most work (first stored on ties), kept as blocks link.
    top: Option<BlockHash>,
}

impl ChainIndex {
    pub fn new(network: Network) -> ChainIndex {
        ChainIndex {
            genesis: bitcoin::constants::genesis_block(network).block_hash(),
            max_target: bitcoin::consensus::Params::new(network).max_attainable_target,
            entries: HashMap::new(),
            orphans: HashMap::new(),
            seen: HashSet::new(),
            chain: Vec::new(),
            by_file: BTreeMap::new(),
            children: HashMap::new(),
            top: None,
        }
    }

    /// Adds a header found at `loc`, linking it (and any orphans waiting for it) when its parent
    /// is known. Returns whether the header was new. A header without valid proof of work (a
    /// damaged or forged file) is ignored: Core never stores one, and its claimed work could
    /// overflow the chain's total.
    pub fn add(&mut self, header: Header, loc: Loc) -> bool {
        let target = header.target();
        if target == Target::ZERO
            || target > self.max_target
            || header.validate_pow(target).is_err()
        {
            tracing::warn!(
                file = loc.file,
                offset = loc.span.offset,
                "a block header without valid proof of work; ignored"
            );
            return false;
        }
        let hash = header.block_hash();
        if !self.seen.insert(hash) {
            return false;
        }
        let mut work = vec![(hash, header, loc)];
        while let Some((hash, header, loc)) = work.pop() {
            let linked = if hash == self.genesis {
                Some((0, header.work()))
            } else {
                self.entries
                    .get(&header.prev_blockhash)
                    .map(|p| (p.height + 1, p.work + header.work()))
            };
            match linked {
                Some((height, total)) => {
                    self.entries.insert(
                        hash,
                        Entry {
                            header,
                            loc,
                            height,
                            work: total,
                        },
                    );
                    self.by_file.entry(loc.file).or_default().push(hash);
                    if height > 0 {
                        *self.children.entry(header.prev_blockhash).or_default() += 1;
                    }
                    let beats = |top: &BlockHash| {
                        self.entries.get(top).is_none_or(|t| {
                            (total, Reverse(loc.order())) > (t.work, Reverse(t.loc.order()))
                        })
                    };
                    if self.top.as_ref().is_none_or(beats) {
                        self.top = Some(hash);
                    }
                    if let Some(children) = self.orphans.remove(&hash) {
                        work.extend(children.into_iter().map(|(h, l)| (h.block_hash(), h, l)));
                    }
                }
                None => self
                    .orphans
                    .entry(header.prev_blockhash)
                    .or_default()
                    .push((header, loc)),
            }
        }
        true
    }

    /// The linked block with the most work, skipping `excluded`; ties go to the block stored
    /// first.
    pub fn best(&self, excluded: &BTreeSet<BlockHash>) -> Option<BlockHash> {
        if excluded.is_empty() {
            return self.top;
        }
        self.entries
            .iter()
            .filter(|(h, _)| !excluded.contains(*h))
            .max_by_key(|(_, e)| (e.work, Reverse(e.loc.order())))
            .map(|(h, _)| *h)
    }

    /// Makes the chain ending at `tip` the best chain.
    pub fn set_tip(&mut self, tip: BlockHash) {
        let Some(entry) = self.entries.get(&tip) else {
            return;
        };
        let height = entry.height as usize;
        self.chain.truncate(height + 1);
        self.chain.resize(height + 1, tip);
        let mut at = tip;
        for h in (0..=height).rev() {
            if self.chain[h] == at && h != height {
                break;
            }
            self.chain[h] = at;
            match self.entries.get(&at) {
                Some(e) if h > 0 => at = e.header.prev_blockhash,
                _ => break,
            }
        }
    }

    pub fn chain(&self) -> &[BlockHash] {
        &self.chain
    }

    pub fn get(&self, hash: &BlockHash) -> Option<&Entry> {
        self.entries.get(hash)
    }

    /// Whether `hash` is on the best chain.
    pub fn on_chain(&self, hash: &BlockHash) -> Option<u64> {
        let e = self.entries.get(hash)?;
        (self.chain.get(e.height as usize) == Some(hash)).then_some(e.height)
    }

    /// Whether another block found has the same parent as `hash`.
    pub fn has_sibling(&self, hash: &BlockHash) -> bool {
        self.entries.get(hash).is_some_and(|e| {
            e.height > 0 && self.children.get(&e.header.prev_blockhash).copied() > Some(1)
        })
    }

    /// The best-chain blocks above the genesis block stored in blk file `file` that have no
    /// sibling, with their parents, by height.
    pub fn lone_chain_in_file(&self, file: u32) -> Vec<(BlockHash, BlockHash)> {
        let mut out: Vec<(u64, BlockHash, BlockHash)> = self
            .by_file
            .get(&file)
            .into_iter()
            .flatten()
            .filter(|h| !self.has_sibling(h))
            .filter_map(|h| {
                let height = self.on_chain(h).filter(|h| *h > 0)?;
                Some((height, *h, self.entries.get(h)?.header.prev_blockhash))
            })
            .collect();
        out.sort_unstable_by_key(|(height, _, _)| *height);
        out.into_iter().map(|(_, h, p)| (h, p)).collect()
    }

    /// Linked blocks that are not on the best chain, in file order.
    pub fn stale(&self) -> Vec<BlockHash> {
        let mut stale: Vec<(Loc, BlockHash)> = self
            .entries
            .iter()
            .filter(|(h, _)| self.on_chain(h).is_none())
            .map(|(h, e)| (e.loc, *h))
            .collect();
        stale.sort_unstable_by_key(|(loc, _)| loc.order());
        stale.into_iter().map(|(_, h)| h).collect()
    }

    /// How many headers wait for a parent that was never found.
    pub fn orphan_count(&self) -> usize {
        self.orphans.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bitcoin::CompactTarget;
    use bitcoin::hashes::Hash;

    /// A regtest child of `parent` with valid proof of work (distinct per `seed`).
    fn child(parent: BlockHash, seed: u32) -> Header {
        let g = bitcoin::constants::genesis_block(Network::Regtest).header;
        let mut h = Header {
            prev_blockhash: parent,
            nonce: seed * 1_000,
            bits: CompactTarget::from_consensus(0x207fffff),
            merkle_root: bitcoin::TxMerkleNode::all_zeros(),
            ..g
        };
        while h.validate_pow(h.target()).is_err() {
            h.nonce += 1;
        }
        h
    }

    /// Found by the `blk_files` fuzz target: a header whose bits give a zero (or tiny) target
    /// claimed more work than a U256 holds and overflowed the chain's total. Headers without
    /// valid proof of work are now ignored.
    #[test]
    fn headers_without_proof_of_work_are_ignored() {
        let g = bitcoin::constants::genesis_block(Network::Regtest).header;
        let mut index = ChainIndex::new(Network::Regtest);
        assert!(index.add(g, loc(0, 0)));
        let good = child(g.block_hash(), 1);
        for bits in [0x0100_0000, 0x0300_0001, 0x2100_ffff] {
            let mut bad = good;
            bad.bits = CompactTarget::from_consensus(bits);
            assert!(!index.add(bad, loc(0, 100)), "bits {bits:#x}");
        }
        let mut no_pow = good;
        while no_pow.validate_pow(no_pow.target()).is_ok() {
            no_pow.nonce += 1;
        }
        assert!(!index.add(no_pow, loc(0, 200)));
        assert!(index.add(good, loc(0, 300)));
        assert_eq!(index.best(&BTreeSet::new()), Some(good.block_hash()));
    }

    fn loc(file: u32, offset: u64) -> Loc {
        Loc {
            file,
            span: Span { offset, len: 80 },
        }
    }

    #[test]
    fn out_of_order_blocks_link_and_the_most_work_wins() {
        let g = bitcoin::constants::genesis_block(Network::Regtest).header;
        let a1 = child(g.block_hash(), 1);
        let a2 = child(a1.block_hash(), 2);
        let b1 = child(g.block_hash(), 3);
        let b2 = child(b1.block_hash(), 4);
        let b3 = child(b2.block_hash(), 5);
        let mut index = ChainIndex::new(Network::Regtest);
        // Children before parents, and the genesis block last.
        for (i, h) in [b3, a2, b2, a1, b1, g].into_iter().enumerate() {
            assert!(index.add(h, loc(0, i as u64 * 100)));
        }
        assert!(
            !index.add(a1, loc(1, 0)),
            "a block stored twice counts once"
        );
        assert_eq!(index.orphan_count(), 0);
        let tip = index.best(&BTreeSet::new()).unwrap();
        assert_eq!(tip, b3.block_hash());
        index.set_tip(tip);
        assert_eq!(
            index.chain(),
            [
                g.block_hash(),
                b1.block_hash(),
                b2.block_hash(),
                b3.block_hash()
            ]
        );
        assert_eq!(index.stale(), vec![a2.block_hash(), a1.block_hash()]);
        // Excluding b3 leaves a tie at height 2: a2 was stored before b2.
        let tip = index.best(&BTreeSet::from([b3.block_hash()])).unwrap();
        assert_eq!(tip, a2.block_hash());
        index.set_tip(tip);
        assert_eq!(
            index.chain(),
            [g.block_hash(), a1.block_hash(), a2.block_hash()]
        );
        // a1 and b1 are siblings (children of the genesis block), so only a2 pairs alone.
        assert_eq!(
            index.lone_chain_in_file(0),
            vec![(a2.block_hash(), a1.block_hash())]
        );
        assert!(index.has_sibling(&b1.block_hash()) && !index.has_sibling(&b2.block_hash()));
        assert_eq!(index.on_chain(&b1.block_hash()), None);
    }

    #[test]
    fn headers_without_a_parent_stay_orphans() {
        let lost = child(BlockHash::all_zeros(), 9);
        let mut index = ChainIndex::new(Network::Regtest);
        index.add(lost, loc(0, 0));
        assert_eq!(index.orphan_count(), 1);
        assert_eq!(index.best(&BTreeSet::new()), None);
    }
}
