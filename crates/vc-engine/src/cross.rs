//! Cross-checked sources: at every height the engine processes, other sources (witnesses)
//! must agree with the one it reads blocks from on the block hash and, where both can tell,
//! on the candidate transactions (the ones carrying one of the application's payloads) and the
//! outputs they spend. One source can hide the best chain or an operation (an Electrum server
//! that leaves a transaction out of a history it never listed); several independent ones
//! cannot, unless they all do.
//!
//! A block source whose block has the agreed hash has the same transactions (every block is
//! checked against its hash and merkle root), so only its candidates' spent outputs can
//! differ, and they are fetched only when the block has candidates. A watching source is asked
//! for the block's watched transactions.

use bitcoin::hashes::{Hash, sha256};
use bitcoin::{BlockHash, Txid};
use vc_source::{Source, SourceError, valid};

use crate::block::{Input, Recognizer};

/// What agreement among the sources means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Agreement {
    /// Every source gives the same answer (a source that fails to answer is a disagreement).
    #[default]
    All,
    /// More than half of the sources give the block source's answer.
    Majority,
}

impl core::fmt::Display for Agreement {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Agreement::All => "all",
            Agreement::Majority => "majority",
        })
    }
}

impl core::str::FromStr for Agreement {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Agreement::All),
            "majority" => Ok(Agreement::Majority),
            other => Err(format!(
                "{other:?} is not an agreement policy (all, majority)"
            )),
        }
    }
}

/// One source's answer for a height.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceAnswer {
    /// The source's name.
    pub source: String,
    /// Its block hash at the height, or why it gave none.
    pub block_hash: Result<BlockHash, String>,
    /// The candidate transactions it delivered, `(position, txid)` in block order, when it was
    /// asked (`None`: not compared, because the block hash differs or the source's block is
    /// the one already checked).
    pub candidates: Option<Vec<(u32, Txid)>>,
    /// A digest of the candidates' spent outputs, when it was asked.
    pub spent_digest: Option<sha256::Hash>,
}

impl SourceAnswer {
    /// Whether two answers agree wherever both can tell.
    fn agrees(&self, other: &SourceAnswer) -> bool {
        let (Ok(a), Ok(b)) = (&self.block_hash, &other.block_hash) else {
            return false;
        };
        a == b
            && match (&self.candidates, &other.candidates) {
                (Some(x), Some(y)) => x == y && self.spent_digest == other.spent_digest,
                _ => true,
            }
    }
}

impl core::fmt::Display for SourceAnswer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: ", self.source)?;
        match &self.block_hash {
            Ok(h) => write!(f, "block {h}")?,
            Err(e) => return write!(f, "no answer ({e})"),
        }
        if let Some(c) = &self.candidates {
            let list: Vec<String> = c.iter().map(|(i, t)| format!("{i}:{t}")).collect();
            write!(f, ", {} candidates [{}]", c.len(), list.join(", "))?;
        }
        if let Some(d) = &self.spent_digest {
            write!(f, ", spent outputs {}", &d.to_string()[..16])?;
        }
        Ok(())
    }
}

/// The candidates of `input` and the digest of their spent outputs.
fn candidates(input: &Input, recognizer: &Recognizer) -> (Vec<(u32, Txid)>, sha256::Hash) {
    let mut list = Vec::new();
    let mut engine = sha256::Hash::engine();
    for (i, tx, spent) in &input.txs {
        if recognizer.payload(tx).is_none() {
            continue;
        }
        list.push((*i, tx.compute_txid()));
        bitcoin::hashes::HashEngine::input(&mut engine, &i.to_le_bytes());
        for out in spent.as_deref().unwrap_or_default() {
            let out = bitcoin::consensus::encode::serialize(out);
            bitcoin::hashes::HashEngine::input(&mut engine, &out);
        }
    }
    (list, sha256::Hash::from_engine(engine))
}

/// The answer of the block source the engine applies from, for `input`.
pub(crate) fn primary_answer(
    source: &Source,
    input: &Input,
    recognizer: &Recognizer,
) -> SourceAnswer {
    let (list, digest) = candidates(input, recognizer);
    SourceAnswer {
        source: source.chain().name().to_owned(),
        block_hash: Ok(input.hash),
        candidates: Some(list),
        spent_digest: Some(digest),
    }
}

/// `witness`'s answer at `input`'s height, compared where it can be. `primary_is_whole`: the
/// block source's input is a whole, checked block without candidates (then a block witness
/// with its hash needs no fetch).
pub(crate) fn witness_answer(
    witness: &Source,
    input: &Input,
    recognizer: &Recognizer,
    primary_is_whole: bool,
) -> SourceAnswer {
    let name = witness.chain().name().to_owned();
    let failed = |e: SourceError| SourceAnswer {
        source: name.clone(),
        block_hash: Err(e.to_string()),
        candidates: None,
        spent_digest: None,
    };
    let height = input.height;
    let hash = match witness.chain().block_hash(height) {
        Ok(h) => h,
        Err(e) => return failed(e),
    };
    let mut answer = SourceAnswer {
        source: name.clone(),
        block_hash: Ok(hash),
        candidates: None,
        spent_digest: None,
    };
    if hash != input.hash {
        return answer;
    }
    let theirs = match witness {
        // The same hash means the same transactions: a whole block without candidates has
        // none in the witness's either, and only spent outputs could differ.
        Source::Blocks(_) if primary_is_whole => return answer,
        Source::Blocks(blocks) => (|| {
            let fetched = blocks.block(&hash)?;
            valid::check_block(blocks.name(), height, &hash, &fetched)?;
            let spent = blocks.spent_outputs(&hash, &fetched.block)?;
            valid::check_spent(blocks.name(), height, &fetched.block, &spent)?;
            let tx_count = fetched.block.txdata.len();
            let txs = fetched
                .block
                .txdata
                .into_iter()
                .zip(spent.0)
                .enumerate()
                .skip(1)
                .map(|(i, (tx, s))| (u32::try_from(i).unwrap_or(u32::MAX), tx, Some(s)))
                .collect();
            Ok(Input {
                height,
                hash,
                header: fetched.block.header,
                size: fetched.size,
                tx_count,
                txs,
            })
        })(),
        Source::Watched(watching) => {
            let select = |tx: &bitcoin::Transaction| recognizer.payload(tx).is_some();
            watching
                .watched(height, &recognizer.markers, &select)
                .map(Input::from_watched)
        }
    };
    match theirs {
        Ok(theirs) => {
            let (list, digest) = candidates(&theirs, recognizer);
            answer.candidates = Some(list);
            answer.spent_digest = Some(digest);
            answer
        }
        Err(e) => failed(e),
    }
}

/// Whether `answers` (the block source's first) satisfy `policy`.
pub(crate) fn agreed(answers: &[SourceAnswer], policy: Agreement) -> bool {
    let Some((primary, witnesses)) = answers.split_first() else {
        return true;
    };
    let agreeing = witnesses.iter().filter(|w| w.agrees(primary)).count() + 1;
    match policy {
        Agreement::All => agreeing == answers.len(),
        Agreement::Majority => 2 * agreeing > answers.len(),
    }
}
