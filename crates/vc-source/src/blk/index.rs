//! The in-memory block index of a blocks directory: every header found in the blk files, linked
//! to its parent, with its height and cumulative work, and the best chain among them.
//!
//! Blocks arrive out of order in the files (Core stores blocks as they download), so a header
//! whose parent has not been seen waits as an orphan until it shows up. The best chain ends at
//! the block with the most cumulative work; among equal work, the block stored first wins, which
//! is the order Core received them in (Core too prefers the first-seen of two equal tips).
//!
//! Mainnet has about 900,000 blocks, so the layout is compact: one 120-byte node per linked
//! block in a vector (the header without its parent's hash, which is the parent node's hash),
//! found by hash through an open-addressing table of node numbers (4 bytes a slot), and the best
//! chain as node numbers. [`ChainIndex::heap_bytes`] says what it all takes.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

use bitcoin::block::{Header, Version};
use bitcoin::pow::{CompactTarget, Target};
use bitcoin::{BlockHash, Network, TxMerkleNode};

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

/// A block linked to the genesis block, as callers see it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub header: Header,
    pub loc: Loc,
    pub height: u64,
}

/// No node: the genesis block's parent, an empty table slot.
const NONE: u32 = u32::MAX;

/// A linked block (120 bytes). Cumulative work is kept in 128 bits, as two words so that the
/// node needs no 16-byte alignment: a chain's total work is what its miners hashed (mainnet's
/// is about 2^95), and a sum that would not fit saturates.
#[derive(Clone, Copy, Debug)]
struct Node {
    hash: BlockHash,
    merkle_root: TxMerkleNode,
    version: i32,
    time: u32,
    bits: u32,
    nonce: u32,
    parent: u32,
    height: u32,
    file: u32,
    len: u32,
    offset: u64,
    work: [u64; 2],
}

impl Node {
    fn work(&self) -> u128 {
        u128::from(self.work[0]) | (u128::from(self.work[1]) << 64)
    }

    fn loc(&self) -> Loc {
        Loc {
            file: self.file,
            span: Span {
                offset: self.offset,
                len: self.len,
            },
        }
    }
}

/// The work a header's target stands for, in 128 bits (saturating: no valid header comes near).
fn work_of(header: &Header) -> u128 {
    let bytes = header.work().to_le_bytes();
    let (low, high) = bytes.split_at(16);
    if high.iter().any(|b| *b != 0) {
        return u128::MAX;
    }
    let mut b = [0u8; 16];
    b.copy_from_slice(low);
    u128::from_le_bytes(b)
}

/// Node numbers by block hash: open addressing with linear probing over a power-of-two table,
/// at most half full. Hashes are mixed with a per-process key, so files crafted to collide
/// cannot make lookups slow.
#[derive(Debug)]
struct Table {
    slots: Vec<u32>,
    len: usize,
    keys: RandomState,
}

impl Table {
    fn new() -> Table {
        Table {
            slots: vec![NONE; 1024],
            len: 0,
            keys: RandomState::new(),
        }
    }

    fn start(&self, hash: &BlockHash) -> usize {
        self.keys.hash_one(hash) as usize & (self.slots.len() - 1)
    }

    fn find(&self, hash: &BlockHash, nodes: &[Node]) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut i = self.start(hash);
        loop {
            match self.slots[i] {
                NONE => return None,
                id if nodes[id as usize].hash == *hash => return Some(id),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Adds node `id` (whose hash is not in the table yet).
    fn insert(&mut self, id: u32, nodes: &[Node]) {
        if (self.len + 1) * 2 > self.slots.len() {
            let mut bigger = Table {
                slots: vec![NONE; self.slots.len() * 2],
                len: 0,
                keys: self.keys.clone(),
            };
            for &old in self.slots.iter().filter(|s| **s != NONE) {
                bigger.place(old, nodes);
            }
            *self = bigger;
        }
        self.place(id, nodes);
    }

    fn place(&mut self, id: u32, nodes: &[Node]) {
        let mask = self.slots.len() - 1;
        let mut i = self.start(&nodes[id as usize].hash);
        while self.slots[i] != NONE {
            i = (i + 1) & mask;
        }
        self.slots[i] = id;
        self.len += 1;
    }

    /// Makes room for `more` entries without growing again.
    fn reserve(&mut self, more: usize, nodes: &[Node]) {
        let want = ((self.len + more) * 2).next_power_of_two();
        if want > self.slots.len() {
            let mut bigger = Table {
                slots: vec![NONE; want],
                len: 0,
                keys: self.keys.clone(),
            };
            for &old in self.slots.iter().filter(|s| **s != NONE) {
                bigger.place(old, nodes);
            }
            *self = bigger;
        }
    }
}

/// Headers found so far and the best chain.
#[derive(Debug)]
pub(crate) struct ChainIndex {
    genesis: BlockHash,
    /// The network's easiest target: a header claiming an easier one is not a block.
    max_target: Target,
    nodes: Vec<Node>,
    table: Table,
    /// Headers whose parent has not been found yet, by parent.
    orphans: HashMap<BlockHash, Vec<(Header, Loc)>>,
    /// The hashes of the orphans, to skip orphans stored twice.
    orphan_hashes: HashSet<BlockHash>,
    /// The best chain by height, as node numbers.
    chain: Vec<u32>,
    /// Linked blocks per blk file.
    by_file: BTreeMap<u32, Vec<u32>>,
    /// The linked block with the most work (first stored on ties), kept as blocks link.
    top: Option<u32>,
    /// Nodes with at least one linked child, a bit each.
    has_child: Vec<u64>,
    /// Nodes with several linked children (forks: rare).
    forks: HashSet<u32>,
    /// The target and work of the last header's bits, which most headers repeat.
    last_work: Option<(CompactTarget, Target, u128)>,
}

impl ChainIndex {
    pub fn new(network: Network) -> ChainIndex {
        ChainIndex {
            genesis: bitcoin::constants::genesis_block(network).block_hash(),
            max_target: bitcoin::consensus::Params::new(network).max_attainable_target,
            nodes: Vec::new(),
            table: Table::new(),
            orphans: HashMap::new(),
            orphan_hashes: HashSet::new(),
            chain: Vec::new(),
            by_file: BTreeMap::new(),
            top: None,
            has_child: Vec::new(),
            forks: HashSet::new(),
            last_work: None,
        }
    }

    /// Gives back the capacity reserved beyond what is held (after a large scan).
    pub fn shrink(&mut self) {
        self.nodes.shrink_to_fit();
        self.chain.shrink_to_fit();
        self.has_child.shrink_to_fit();
    }

    /// Makes room for `more` headers (a scan's results) without reallocating per header:
    /// capacity grows by what is asked, or by an eighth, whichever is more.
    pub fn reserve(&mut self, more: usize) {
        if self.nodes.capacity() - self.nodes.len() < more {
            self.nodes.reserve_exact(more.max(self.nodes.len() / 8));
        }
        self.table.reserve(more, &self.nodes);
    }

    fn find(&self, hash: &BlockHash) -> Option<u32> {
        self.table.find(hash, &self.nodes)
    }

    fn header_of(&self, node: &Node) -> Header {
        Header {
            version: Version::from_consensus(node.version),
            prev_blockhash: match node.parent {
                NONE => BlockHash::from_raw_hash(bitcoin::hashes::Hash::all_zeros()),
                p => self.nodes[p as usize].hash,
            },
            merkle_root: node.merkle_root,
            time: node.time,
            bits: CompactTarget::from_consensus(node.bits),
            nonce: node.nonce,
        }
    }

    /// The work of `header`'s bits, if they are within the network's limit and `hash` meets
    /// them.
    fn checked_work(&mut self, header: &Header, hash: BlockHash) -> Option<u128> {
        let (target, work) = match self.last_work {
            Some((bits, target, work)) if bits == header.bits => (target, work),
            _ => {
                let target = header.target();
                if target == Target::ZERO || target > self.max_target {
                    return None;
                }
                let work = work_of(header);
                self.last_work = Some((header.bits, target, work));
                (target, work)
            }
        };
        target.is_met_by(hash).then_some(work)
    }

    /// Adds a header found at `loc`, linking it (and any orphans waiting for it) when its parent
    /// is known. Returns whether the header was new. A header without valid proof of work (a
    /// damaged or forged file) is ignored: Core never stores one, and its claimed work could
    /// overflow the chain's total.
    #[cfg(test)]
    pub fn add(&mut self, header: Header, loc: Loc) -> bool {
        self.add_hashed(header, header.block_hash(), loc)
    }

    /// [`ChainIndex::add`] with the header's hash computed already (`hash` must be it).
    pub fn add_hashed(&mut self, header: Header, hash: BlockHash, loc: Loc) -> bool {
        let Some(own) = self.checked_work(&header, hash) else {
            tracing::warn!(
                file = loc.file,
                offset = loc.span.offset,
                "a block header without valid proof of work; ignored"
            );
            return false;
        };
        if self.find(&hash).is_some()
            || (!self.orphan_hashes.is_empty() && self.orphan_hashes.contains(&hash))
        {
            return false;
        }
        let mut work = vec![(hash, header, loc, own)];
        while let Some((hash, header, loc, own)) = work.pop() {
            let parent = if hash == self.genesis {
                Some(NONE)
            } else {
                self.parent_of(&header)
            };
            match parent {
                Some(parent) => {
                    if !self.link(hash, &header, loc, parent, own) {
                        continue;
                    }
                    let waiting = if self.orphans.is_empty() {
                        None
                    } else {
                        self.orphans.remove(&hash)
                    };
                    if let Some(children) = waiting {
                        for (h, l) in children {
                            let child = h.block_hash();
                            self.orphan_hashes.remove(&child);
                            work.push((child, h, l, work_of(&h)));
                        }
                    }
                }
                None => {
                    self.orphan_hashes.insert(hash);
                    self.orphans
                        .entry(header.prev_blockhash)
                        .or_default()
                        .push((header, loc));
                }
            }
        }
        true
    }

    /// The node of `header`'s parent, if linked. Blocks mostly come in chain order (in the
    /// files, and always in a saved index), so the last node linked is tried first: it saves a
    /// lookup at a random place of a large table.
    fn parent_of(&self, header: &Header) -> Option<u32> {
        match self.nodes.last() {
            Some(last) if last.hash == header.prev_blockhash => {
                u32::try_from(self.nodes.len() - 1).ok()
            }
            _ => self.find(&header.prev_blockhash),
        }
    }

    /// Stores a block whose parent is node `parent` (or none, for the genesis block).
    fn link(&mut self, hash: BlockHash, header: &Header, loc: Loc, parent: u32, own: u128) -> bool {
        let (height, total) = match parent {
            NONE => (0, own),
            p => {
                let p = &self.nodes[p as usize];
                (p.height + 1, p.work().saturating_add(own))
            }
        };
        let id = match u32::try_from(self.nodes.len()) {
            Ok(id) if id != NONE => id,
            _ => {
                tracing::warn!("more than 4 billion blocks in the files; the rest are ignored");
                return false;
            }
        };
        self.nodes.push(Node {
            hash,
            merkle_root: header.merkle_root,
            version: header.version.to_consensus(),
            time: header.time,
            bits: header.bits.to_consensus(),
            nonce: header.nonce,
            parent,
            height,
            file: loc.file,
            len: loc.span.len,
            offset: loc.span.offset,
            // The low and high words.
            work: [total as u64, (total >> 64) as u64],
        });
        self.table.insert(id, &self.nodes);
        self.by_file.entry(loc.file).or_default().push(id);
        if parent != NONE {
            let (word, bit) = (parent as usize / 64, 1u64 << (parent % 64));
            if self.has_child.len() <= word {
                self.has_child.resize(word + 1, 0);
            }
            if self.has_child[word] & bit != 0 {
                self.forks.insert(parent);
            }
            self.has_child[word] |= bit;
        }
        let beats = |top: u32| {
            let t = &self.nodes[top as usize];
            (total, Reverse(loc.order())) > (t.work(), Reverse(t.loc().order()))
        };
        if self.top.is_none_or(beats) {
            self.top = Some(id);
        }
        true
    }

    /// The linked block with the most work, skipping `excluded`; ties go to the block stored
    /// first.
    pub fn best(&self, excluded: &BTreeSet<BlockHash>) -> Option<BlockHash> {
        if excluded.is_empty() {
            return self.top.map(|t| self.nodes[t as usize].hash);
        }
        self.nodes
            .iter()
            .filter(|n| !excluded.contains(&n.hash))
            .max_by_key(|n| (n.work(), Reverse(n.loc().order())))
            .map(|n| n.hash)
    }

    /// Makes the chain ending at `tip` the best chain.
    pub fn set_tip(&mut self, tip: BlockHash) {
        let Some(id) = self.find(&tip) else {
            return;
        };
        let height = self.nodes[id as usize].height as usize;
        self.chain.truncate(height + 1);
        self.chain.resize(height + 1, id);
        let mut at = id;
        for h in (0..=height).rev() {
            if self.chain[h] == at && h != height {
                break;
            }
            self.chain[h] = at;
            match self.nodes[at as usize].parent {
                NONE => break,
                p => at = p,
            }
        }
    }

    /// The number of blocks on the best chain (its height plus one).
    pub fn chain_len(&self) -> usize {
        self.chain.len()
    }

    /// The hash of the best chain's block at `height`.
    pub fn chain_hash(&self, height: usize) -> Option<BlockHash> {
        self.chain
            .get(height)
            .map(|id| self.nodes[*id as usize].hash)
    }

    /// The best chain's tip.
    pub fn chain_tip(&self) -> Option<BlockHash> {
        self.chain.last().map(|id| self.nodes[*id as usize].hash)
    }

    /// The header of the best chain's block at `height`.
    pub fn chain_header(&self, height: usize) -> Option<Header> {
        self.chain
            .get(height)
            .map(|id| self.header_of(&self.nodes[*id as usize]))
    }

    pub fn get(&self, hash: &BlockHash) -> Option<Entry> {
        let node = &self.nodes[self.find(hash)? as usize];
        Some(Entry {
            header: self.header_of(node),
            loc: node.loc(),
            height: u64::from(node.height),
        })
    }

    fn id_on_chain(&self, id: u32) -> bool {
        self.chain.get(self.nodes[id as usize].height as usize) == Some(&id)
    }

    /// Whether `hash` is on the best chain.
    pub fn on_chain(&self, hash: &BlockHash) -> Option<u64> {
        let id = self.find(hash)?;
        self.id_on_chain(id)
            .then_some(u64::from(self.nodes[id as usize].height))
    }

    fn id_has_sibling(&self, id: u32) -> bool {
        match self.nodes[id as usize].parent {
            NONE => false,
            p => self.forks.contains(&p),
        }
    }

    /// Whether another block found has the same parent as `hash`.
    pub fn has_sibling(&self, hash: &BlockHash) -> bool {
        self.find(hash).is_some_and(|id| self.id_has_sibling(id))
    }

    /// The best-chain blocks above the genesis block stored in blk file `file` that have no
    /// sibling, with their parents, by height.
    pub fn lone_chain_in_file(&self, file: u32) -> Vec<(BlockHash, BlockHash)> {
        let mut out: Vec<(u32, BlockHash, BlockHash)> = self
            .by_file
            .get(&file)
            .into_iter()
            .flatten()
            .filter(|&&id| !self.id_has_sibling(id) && self.id_on_chain(id))
            .filter_map(|&id| {
                let n = &self.nodes[id as usize];
                let parent = self.nodes.get(n.parent as usize)?;
                Some((n.height, n.hash, parent.hash))
            })
            .collect();
        out.sort_unstable_by_key(|(height, _, _)| *height);
        out.into_iter().map(|(_, h, p)| (h, p)).collect()
    }

    /// Linked blocks that are not on the best chain, in file order.
    pub fn stale(&self) -> Vec<BlockHash> {
        let mut stale: Vec<(Loc, BlockHash)> = (0..self.nodes.len() as u32)
            .filter(|&id| !self.id_on_chain(id))
            .map(|id| (self.nodes[id as usize].loc(), self.nodes[id as usize].hash))
            .collect();
        stale.sort_unstable_by_key(|(loc, _)| loc.order());
        stale.into_iter().map(|(_, h)| h).collect()
    }

    /// How many headers wait for a parent that was never found.
    pub fn orphan_count(&self) -> usize {
        self.orphan_hashes.len()
    }

    /// How many headers the index holds (linked and orphans).
    pub fn len(&self) -> usize {
        self.nodes.len() + self.orphan_hashes.len()
    }

    /// Every header held with where it is: linked blocks parents first, then orphans. Adding
    /// them in this order to an empty index rebuilds this one.
    pub fn for_each_record(&self, mut f: impl FnMut(&Header, Loc)) {
        for node in &self.nodes {
            f(&self.header_of(node), node.loc());
        }
        for (header, loc) in self.orphans.values().flatten() {
            f(header, *loc);
        }
    }

    /// The best chain's hashes, by height.
    #[cfg(test)]
    pub fn chain(&self) -> Vec<BlockHash> {
        self.chain
            .iter()
            .map(|id| self.nodes[*id as usize].hash)
            .collect()
    }

    /// The heap memory the index holds, in bytes (capacities, not lengths).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let orphans: usize = self
            .orphans
            .values()
            .map(|v| size_of::<BlockHash>() + 24 + v.capacity() * size_of::<(Header, Loc)>())
            .sum();
        self.nodes.capacity() * size_of::<Node>()
            + self.table.slots.capacity() * size_of::<u32>()
            + self.chain.capacity() * size_of::<u32>()
            + self.has_child.capacity() * size_of::<u64>()
            + self.forks.capacity() * (size_of::<u32>() + 1)
            + self
                .by_file
                .values()
                .map(|v| v.capacity() * size_of::<u32>() + 48)
                .sum::<usize>()
            + orphans
            + self.orphan_hashes.capacity() * (size_of::<BlockHash>() + 1)
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
    fn a_node_takes_120_bytes() {
        assert_eq!(std::mem::size_of::<Node>(), 120);
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
