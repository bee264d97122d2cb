//! Cross-chain migration (`docs/migration.md`): the byte layouts of the three operations, the
//! commitment a binding reveals, the records the migration commits into the consensus-hash
//! chain, the rule that decides whether a reveal matches its commit, and the mapping between a
//! chain's own heights and the virtual chain's heights.
//!
//! Everything here is a consensus rule of the migration protocol; the engine only decides when
//! to apply it. A light client uses [`BoundaryRecord::decode`] on the records of a proven block
//! to learn which chain the virtual chain moved to and which state it bound.
//!
//! ```
//! use vc_chash::Hash256;
//! use vc_chash::migration::{Announcement, ChainId, Reveal, commitment, reveal_matches, PendingCommit};
//!
//! let target = ChainId { magic: [0xfa, 0xbf, 0xb5, 0xda], genesis: Hash256([6; 32]) };
//! let ann = Announcement { last_height: 250, target, anchor: Hash256([7; 32]) };
//! let ch_a = Hash256([1; 32]);
//! let salt = [9u8; 32];
//! let commit = PendingCommit { height: 300, commitment: commitment(&ann, &ch_a, &salt) };
//! let reveal = Reveal { ch_a, salt };
//! assert!(reveal_matches(&ann, &ch_a, &commit, &reveal, 302, 6).is_ok());
//! ```

use alloc::vec::Vec;
use core::fmt;

use crate::digest::sha256;
use crate::types::Hash256;
use crate::wire::{DecodeError, DecodeErrorKind, Reader};

/// The domain tag of the binding commitment (after v3's `0x0C`).
pub const TAG_COMMITMENT: u8 = 0x0D;

/// The version byte every migration body and record starts with (after its kind).
pub const BODY_VERSION: u8 = 0x01;

/// The first byte of a migration record: no canonical application record starts with it (they
/// start with their encoding version, `0x01`).
pub const RECORD_MARKER: u8 = 0x00;

/// The kind byte of the announcement record.
pub const RECORD_ANNOUNCEMENT: u8 = 0x01;

/// The kind byte of the boundary record.
pub const RECORD_BOUNDARY: u8 = 0x02;

/// Length of an announcement body.
pub const ANNOUNCE_LEN: usize = 77;
/// Length of a commit body.
pub const COMMIT_LEN: usize = 33;
/// Length of a reveal body.
pub const REVEAL_LEN: usize = 65;
/// Length of a boundary record.
pub const BOUNDARY_LEN: usize = 190;

/// A blockchain's identity: its network's message-start bytes and its genesis block's hash
/// (internal byte order). Two regtest chains share it; an announcement adds an anchor block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId {
    /// The network magic (`fabfb5da` on regtest).
    pub magic: [u8; 4],
    /// The genesis block's hash, internal byte order.
    pub genesis: Hash256,
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::hex::write(f, &self.magic)?;
        f.write_str(":")?;
        fmt::Display::fmt(&self.genesis.reversed(), f)
    }
}

/// The announcement made on chain A: A ends at `last_height` (`H_A`) and the state goes to
/// `target`, on the branch that holds `anchor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Announcement {
    /// `H_A`: the last block of A the virtual chain reads.
    pub last_height: u64,
    /// The target chain B.
    pub target: ChainId,
    /// A block of B (internal byte order) that existed when the announcement was made.
    pub anchor: Hash256,
}

impl Announcement {
    /// The operation's body: `0x01 || u64(H_A) || magic_B || genesis_B || anchor_B`, 77 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ANNOUNCE_LEN);
        out.push(BODY_VERSION);
        out.extend_from_slice(&self.last_height.to_be_bytes());
        out.extend_from_slice(&self.target.magic);
        out.extend_from_slice(&self.target.genesis.0);
        out.extend_from_slice(&self.anchor.0);
        out
    }

    /// Decodes an announcement body; anything but exactly the layout of [`Announcement::encode`]
    /// fails.
    pub fn decode(body: &[u8]) -> Result<Announcement, DecodeError> {
        let mut r = Reader::new(body);
        version(&mut r)?;
        let last_height = r.u64("last height")?;
        let magic = r.array::<4>("network magic")?;
        let genesis = r.hash("genesis hash")?;
        let anchor = r.hash("anchor hash")?;
        r.finish()?;
        Ok(Announcement {
            last_height,
            target: ChainId { magic, genesis },
            anchor,
        })
    }

    /// The announcement record it commits on A: `0x00 || 0x01 || body`.
    pub fn record(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + ANNOUNCE_LEN);
        out.push(RECORD_MARKER);
        out.push(RECORD_ANNOUNCEMENT);
        out.extend_from_slice(&self.encode());
        out
    }
}

fn version(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    match r.u8("version")? {
        BODY_VERSION => Ok(()),
        v => Err(r.error_at(0, DecodeErrorKind::UnsupportedVersion(v))),
    }
}

/// The binding commitment:
/// `H(0x0D || u64(H_A) || ch_A || magic_B || genesis_B || anchor_B || salt)`.
pub fn commitment(ann: &Announcement, ch_a: &Hash256, salt: &[u8; 32]) -> Hash256 {
    let mut pre = Vec::with_capacity(1 + 8 + 32 + 4 + 32 + 32 + 32);
    pre.push(TAG_COMMITMENT);
    pre.extend_from_slice(&ann.last_height.to_be_bytes());
    pre.extend_from_slice(&ch_a.0);
    pre.extend_from_slice(&ann.target.magic);
    pre.extend_from_slice(&ann.target.genesis.0);
    pre.extend_from_slice(&ann.anchor.0);
    pre.extend_from_slice(salt);
    Hash256(sha256(&pre))
}

/// The commit operation's body: `0x01 || commitment`, 33 bytes.
pub fn encode_commit(commitment: &Hash256) -> Vec<u8> {
    let mut out = Vec::with_capacity(COMMIT_LEN);
    out.push(BODY_VERSION);
    out.extend_from_slice(&commitment.0);
    out
}

/// Decodes a commit body into its commitment.
pub fn decode_commit(body: &[u8]) -> Result<Hash256, DecodeError> {
    let mut r = Reader::new(body);
    version(&mut r)?;
    let c = r.hash("commitment")?;
    r.finish()?;
    Ok(c)
}

/// The reveal operation: the consensus hash it binds and the commitment's salt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reveal {
    /// `CH_A(H_A)` as the revealer states it.
    pub ch_a: Hash256,
    /// The salt of the commitment.
    pub salt: [u8; 32],
}

impl Reveal {
    /// The body: `0x01 || ch_A || salt`, 65 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(REVEAL_LEN);
        out.push(BODY_VERSION);
        out.extend_from_slice(&self.ch_a.0);
        out.extend_from_slice(&self.salt);
        out
    }

    /// Decodes a reveal body.
    pub fn decode(body: &[u8]) -> Result<Reveal, DecodeError> {
        let mut r = Reader::new(body);
        version(&mut r)?;
        let ch_a = r.hash("consensus hash")?;
        let salt = r.array::<32>("salt")?;
        r.finish()?;
        Ok(Reveal { ch_a, salt })
    }
}

/// A commit seen on B: its block and its commitment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PendingCommit {
    /// The height (on B) of the block that holds it.
    pub height: u64,
    /// Its commitment.
    pub commitment: Hash256,
}

/// Why a reveal does not bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mismatch {
    /// The reveal names another consensus hash than this node's `CH_A(H_A)`.
    OtherState,
    /// The reveal is not after its commit's block.
    NotAfterCommit,
    /// The reveal is more than `W` blocks after its commit.
    OutsideWindow,
    /// The commitment recomputed from the reveal differs from the commit's.
    Commitment,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mismatch::OtherState => "the reveal names another consensus hash than CH_A(H_A)",
            Mismatch::NotAfterCommit => "the reveal is not in a block after its commit's",
            Mismatch::OutsideWindow => "the reveal is more than W blocks after its commit",
            Mismatch::Commitment => "the reveal does not open the commit's commitment",
        })
    }
}

impl core::error::Error for Mismatch {}

/// Whether `reveal`, in block `reveal_height` of B, opens `commit` for the announcement `ann`
/// whose last block's consensus hash this node computed as `ch_a`, within the window `window`
/// (`docs/migration.md` section 5.3: `ch_A` equal, `c < r <= c + W`, commitment equal).
pub fn reveal_matches(
    ann: &Announcement,
    ch_a: &Hash256,
    commit: &PendingCommit,
    reveal: &Reveal,
    reveal_height: u64,
    window: u64,
) -> Result<(), Mismatch> {
    if reveal.ch_a != *ch_a {
        return Err(Mismatch::OtherState);
    }
    if reveal_height <= commit.height {
        return Err(Mismatch::NotAfterCommit);
    }
    if reveal_height - commit.height > window {
        return Err(Mismatch::OutsideWindow);
    }
    if commitment(ann, &reveal.ch_a, &reveal.salt) != commit.commitment {
        return Err(Mismatch::Commitment);
    }
    Ok(())
}

/// The binding of B: what the boundary record commits in B's first virtual block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BoundaryRecord {
    /// The announcement bound.
    pub announcement: Announcement,
    /// `CH_A(H_A)`.
    pub ch_a: Hash256,
    /// The commit's block height on B.
    pub commit_height: u64,
    /// The commit's txid (internal byte order).
    pub commit_txid: Hash256,
    /// The reveal's block height on B (`r`, the first block of B's segment).
    pub reveal_height: u64,
    /// The salt.
    pub salt: [u8; 32],
}

impl BoundaryRecord {
    /// `0x00 || 0x02 || u64(H_A) || ch_A || magic_B || genesis_B || anchor_B || u64(c) ||
    /// commit_txid || u64(r) || salt`, 190 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let a = &self.announcement;
        let mut out = Vec::with_capacity(BOUNDARY_LEN);
        out.push(RECORD_MARKER);
        out.push(RECORD_BOUNDARY);
        out.extend_from_slice(&a.last_height.to_be_bytes());
        out.extend_from_slice(&self.ch_a.0);
        out.extend_from_slice(&a.target.magic);
        out.extend_from_slice(&a.target.genesis.0);
        out.extend_from_slice(&a.anchor.0);
        out.extend_from_slice(&self.commit_height.to_be_bytes());
        out.extend_from_slice(&self.commit_txid.0);
        out.extend_from_slice(&self.reveal_height.to_be_bytes());
        out.extend_from_slice(&self.salt);
        out
    }

    /// Decodes a boundary record (for example one a light client found in a proven block).
    pub fn decode(record: &[u8]) -> Result<BoundaryRecord, DecodeError> {
        let mut r = Reader::new(record);
        if r.u8("record marker")? != RECORD_MARKER || r.u8("record kind")? != RECORD_BOUNDARY {
            return Err(r.error_at(0, DecodeErrorKind::BadMagic));
        }
        let last_height = r.u64("last height")?;
        let ch_a = r.hash("consensus hash")?;
        let magic = r.array::<4>("network magic")?;
        let genesis = r.hash("genesis hash")?;
        let anchor = r.hash("anchor hash")?;
        let commit_height = r.u64("commit height")?;
        let commit_txid = r.hash("commit txid")?;
        let reveal_height = r.u64("reveal height")?;
        let salt = r.array::<32>("salt")?;
        r.finish()?;
        Ok(BoundaryRecord {
            announcement: Announcement {
                last_height,
                target: ChainId { magic, genesis },
                anchor,
            },
            ch_a,
            commit_height,
            commit_txid,
            reveal_height,
            salt,
        })
    }

    /// The virtual height of B's block at `height` (`None` below the binding block).
    pub fn virtual_height(&self, height: u64) -> Option<u64> {
        let offset = height.checked_sub(self.reveal_height)?;
        self.announcement
            .last_height
            .checked_add(1)?
            .checked_add(offset)
    }

    /// B's own height of the virtual block `virtual_height` (`None` at or below `H_A`).
    pub fn chain_height(&self, virtual_height: u64) -> Option<u64> {
        let offset = virtual_height.checked_sub(self.announcement.last_height.checked_add(1)?)?;
        self.reveal_height.checked_add(offset)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ann() -> Announcement {
        Announcement {
            last_height: 250,
            target: ChainId {
                magic: [0xfa, 0xbf, 0xb5, 0xda],
                genesis: Hash256([6; 32]),
            },
            anchor: Hash256([7; 32]),
        }
    }

    #[test]
    fn bodies_round_trip_and_refuse_other_lengths_and_versions() {
        let a = ann();
        let body = a.encode();
        assert_eq!(body.len(), ANNOUNCE_LEN);
        assert_eq!(Announcement::decode(&body), Ok(a));
        assert!(Announcement::decode(&body[..76]).is_err());
        let mut longer = body.clone();
        longer.push(0);
        assert!(Announcement::decode(&longer).is_err());
        let mut v2 = body;
        v2[0] = 2;
        assert_eq!(
            Announcement::decode(&v2).unwrap_err().kind,
            DecodeErrorKind::UnsupportedVersion(2)
        );

        let c = Hash256([3; 32]);
        assert_eq!(decode_commit(&encode_commit(&c)), Ok(c));
        assert_eq!(encode_commit(&c).len(), COMMIT_LEN);
        let rv = Reveal {
            ch_a: Hash256([1; 32]),
            salt: [2; 32],
        };
        assert_eq!(rv.encode().len(), REVEAL_LEN);
        assert_eq!(Reveal::decode(&rv.encode()), Ok(rv));
        assert!(Reveal::decode(&rv.encode()[..64]).is_err());
    }

    #[test]
    fn every_mismatch_is_told_apart() {
        let a = ann();
        let ch = Hash256([1; 32]);
        let salt = [9; 32];
        let commit = PendingCommit {
            height: 300,
            commitment: commitment(&a, &ch, &salt),
        };
        let good = Reveal { ch_a: ch, salt };
        assert_eq!(reveal_matches(&a, &ch, &commit, &good, 301, 6), Ok(()));
        assert_eq!(reveal_matches(&a, &ch, &commit, &good, 306, 6), Ok(()));
        assert_eq!(
            reveal_matches(&a, &ch, &commit, &good, 307, 6),
            Err(Mismatch::OutsideWindow)
        );
        assert_eq!(
            reveal_matches(&a, &ch, &commit, &good, 300, 6),
            Err(Mismatch::NotAfterCommit)
        );
        let other = Reveal {
            ch_a: Hash256([2; 32]),
            salt,
        };
        assert_eq!(
            reveal_matches(&a, &ch, &commit, &other, 301, 6),
            Err(Mismatch::OtherState)
        );
        let wrong_salt = Reveal {
            ch_a: ch,
            salt: [8; 32],
        };
        assert_eq!(
            reveal_matches(&a, &ch, &commit, &wrong_salt, 301, 6),
            Err(Mismatch::Commitment)
        );
        // The commitment binds the target: the same reveal under another anchor fails.
        let mut moved = a;
        moved.anchor = Hash256([8; 32]);
        assert_eq!(
            reveal_matches(&moved, &ch, &commit, &good, 301, 6),
            Err(Mismatch::Commitment)
        );
    }

    #[test]
    fn the_boundary_record_round_trips_and_maps_heights() {
        let b = BoundaryRecord {
            announcement: ann(),
            ch_a: Hash256([1; 32]),
            commit_height: 300,
            commit_txid: Hash256([4; 32]),
            reveal_height: 302,
            salt: [9; 32],
        };
        let bytes = b.encode();
        assert_eq!(bytes.len(), BOUNDARY_LEN);
        assert_eq!(BoundaryRecord::decode(&bytes), Ok(b));
        assert!(BoundaryRecord::decode(&ann().record()).is_err());
        assert_eq!(b.virtual_height(302), Some(251));
        assert_eq!(b.virtual_height(310), Some(259));
        assert_eq!(b.virtual_height(301), None);
        assert_eq!(b.chain_height(251), Some(302));
        assert_eq!(b.chain_height(250), None);
        assert_eq!(ann().record().len(), 2 + ANNOUNCE_LEN);
        assert_eq!(ann().record()[..2], [RECORD_MARKER, RECORD_ANNOUNCEMENT]);
    }
}
