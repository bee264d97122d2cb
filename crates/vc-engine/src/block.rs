//! Applying one block: candidates, parse, prepare, check, commit, finalize.

use core::cell::OnceCell;

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, ScriptBuf, Transaction, TxOut, Txid};
use vc_chash::{ConsensusHash, Hash256, Scheme, Seeds};
use vc_codec::carrier::Carrier;
use vc_codec::payload::PayloadFormat;
use vc_codec::record;
use vc_source::prefetch::ScannedBlock;
use vc_source::{WatchedBlock, pays};
use vc_store::{BlockHeader, OutputData, StoredOp, Writer};

use crate::app::{AppSpec, Application, HookError, Parsed, Reject, Stage};
use crate::context::{BlockInfo, BlockScope, OpContext, State};
use crate::error::EngineError;
use crate::migrate::MigrationRules;

/// How an operation is recognised: the carrier rule, the payload format and the marker
/// scripts together.
#[derive(Clone, Debug)]
pub(crate) struct Recognizer {
    pub carrier: Carrier,
    pub format: PayloadFormat,
    pub markers: Vec<ScriptBuf>,
    /// Whether operations carry their witnesses ([`AppSpec::witnesses`]).
    pub witnesses: bool,
}

impl Recognizer {
    /// The recognizer `spec` declares; fails on a spec the engine cannot run (bad magic,
    /// opcodes, payload limit or carrier rule).
    pub fn for_spec(spec: &AppSpec) -> Result<Recognizer, EngineError> {
        let mut opcodes = spec.opcodes.clone();
        if let Some(policy) = &spec.migration {
            if spec.scheme == Scheme::Legacy {
                return Err(EngineError::Spec(
                    "a migration policy needs consensus-hash scheme v2 or v3".into(),
                ));
            }
            let ops = policy.opcodes();
            if ops.iter().any(|o| opcodes.contains(o))
                || ops[0] == ops[1]
                || ops[1] == ops[2]
                || ops[0] == ops[2]
            {
                return Err(EngineError::Spec(
                    "the migration opcodes must be distinct and none of the application's".into(),
                ));
            }
            opcodes.extend_from_slice(&ops);
        }
        Ok(Recognizer {
            carrier: Carrier::new(spec.carrier, spec.payload_limit)
                .map_err(|e| EngineError::Spec(e.to_string()))?,
            format: PayloadFormat::new(&spec.magic, &opcodes, spec.payload_limit)
                .map_err(|e| EngineError::Spec(e.to_string()))?,
            markers: spec.markers.clone(),
            witnesses: spec.witnesses,
        })
    }

    /// The payload of `tx` if it is one of the application's operations: (carrier vout,
    /// opcode, payload).
    pub fn payload<'t>(&self, tx: &'t Transaction) -> Option<(usize, u8, &'t [u8])> {
        if !self.markers.is_empty() && !pays(tx, &self.markers) {
            return None;
        }
        match self.carrier.extract(tx) {
            Ok(Some(c)) => match self.format.decode(c.data) {
                Ok(p) => Some((c.vout, p.opcode, c.data)),
                Err(e) => {
                    if c.data.starts_with(self.format.magic()) {
                        tracing::debug!(txid = %tx.compute_txid(), "ignored payload: {e}");
                    }
                    None
                }
            },
            Ok(None) => None,
            Err(rejection) => {
                tracing::debug!(txid = %tx.compute_txid(), "ignored transaction: {rejection}");
                None
            }
        }
    }
}

/// A transaction's operation as the engine recognises it, before the application parses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recognized<'t> {
    /// The output that carries the payload.
    pub vout: usize,
    /// The opcode byte.
    pub opcode: u8,
    /// The whole payload (magic, opcode, body).
    pub payload: &'t [u8],
}

impl<'t> Recognized<'t> {
    /// The payload after the magic and the opcode: what [`OpContext::body`] gives a hook.
    pub fn body(&self, spec: &AppSpec) -> &'t [u8] {
        self.payload.get(spec.magic.len() + 1..).unwrap_or_default()
    }
}

/// Whether `tx` carries one of `spec`'s operations, by exactly the rules the engine applies
/// to every block (carrier rule, payload format, declared opcodes, marker scripts): the
/// payload the application's `parse` would be given, or `None`. Fails only on a spec the
/// engine cannot run.
///
/// ```
/// use vc_engine::prelude::*;
/// let spec = AppSpec::new("counter", "1", b"hi", 101).with_opcodes(b"+");
/// let tx = bitcoin::Transaction {
///     version: bitcoin::transaction::Version::ONE,
///     lock_time: bitcoin::absolute::LockTime::ZERO,
///     input: vec![],
///     output: vec![bitcoin::TxOut {
///         value: bitcoin::Amount::ZERO,
///         script_pubkey: bitcoin::ScriptBuf::new_op_return(b"hi+1"),
///     }],
/// };
/// let op = vc_engine::recognize(&spec, &tx)?.expect("an operation");
/// assert_eq!((op.vout, op.opcode, op.body(&spec)), (0, b'+', &b"1"[..]));
/// # Ok::<(), vc_engine::EngineError>(())
/// ```
pub fn recognize<'t>(
    spec: &AppSpec,
    tx: &'t Transaction,
) -> Result<Option<Recognized<'t>>, EngineError> {
    Ok(Recognizer::for_spec(spec)?
        .payload(tx)
        .map(|(vout, opcode, payload)| Recognized {
            vout,
            opcode,
            payload,
        }))
}

/// One operation the application did not accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Its transaction.
    pub txid: bitcoin::Txid,
    /// Its position among the block's parsed operations, `None` if parsing failed.
    pub vtxindex: Option<u32>,
    /// Its opcode.
    pub opcode: u8,
    /// Which hook rejected it.
    pub stage: Stage,
    /// Why.
    pub reject: Reject,
}

/// A block as the engine applies it: whole (from a block source) or reduced to the watched
/// transactions (from a watching source). Either way, each candidate keeps its position in the
/// block, so operations get the same `txindex` and `vtxindex` from every source.
pub(crate) struct Input {
    pub height: u64,
    pub hash: BlockHash,
    pub header: Header,
    pub size: usize,
    pub tx_count: usize,
    /// Non-coinbase transactions that may carry operations: (position, transaction, spent
    /// outputs when fetched).
    pub txs: Vec<(u32, Transaction, Option<Vec<TxOut>>)>,
}

impl Input {
    pub fn from_scanned(s: ScannedBlock) -> Input {
        Input {
            height: s.height,
            hash: s.hash,
            header: s.header,
            size: s.size,
            tx_count: s.tx_count,
            txs: s
                .txs
                .into_iter()
                .filter(|t| t.index > 0)
                .map(|t| (t.index, t.tx, t.spent))
                .collect(),
        }
    }

    pub fn from_watched(w: WatchedBlock) -> Input {
        let txs: Vec<_> = w
            .txs
            .into_iter()
            .filter(|t| t.index > 0)
            .map(|t| (t.index, t.tx, t.spent))
            .collect();
        Input {
            height: w.height,
            hash: w.hash,
            header: w.header,
            size: 0,
            tx_count: txs.len(),
            txs,
        }
    }
}

/// What processing one block did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockReport {
    /// The block.
    pub info: BlockInfo,
    /// Its serialized size (0 from a watching source, which never sees the whole block).
    pub size: usize,
    /// Its transaction count (from a watching source: the watched transactions).
    pub tx_count: usize,
    /// Its consensus hash.
    pub consensus_hash: ConsensusHash,
    /// Its ops hash.
    pub ops_hash: Hash256,
    /// How many operations were accepted.
    pub accepted: u32,
    /// The operations that were not.
    pub rejected: Vec<Rejected>,
}

/// The pieces of an engine a block needs.
pub(crate) struct Apply<'a> {
    pub recognizer: &'a Recognizer,
    pub scheme: Scheme,
    pub staleness: u64,
    pub seeds: &'a Seeds,
    /// The migration rules, when the application declares a policy.
    pub migration: Option<MigrationRules<'a>>,
    /// Set to `H_A` when a block accepted a migration announcement.
    pub announced: core::cell::Cell<Option<u64>>,
}

/// The stored form of an accepted operation that committed `records`.
fn stored_op(ctx: &OpContext, records: Vec<Vec<u8>>) -> StoredOp {
    StoredOp {
        txid: ctx.txid.to_byte_array(),
        txindex: ctx.txindex,
        vtxindex: ctx.vtxindex,
        opcode: ctx.opcode,
        payload: ctx.payload.clone(),
        senders: output_data(&ctx.senders),
        outputs: output_data(&ctx.outputs),
        fee: ctx.fee,
        records,
    }
}

fn sum_values(outs: &[bitcoin::TxOut]) -> Option<u64> {
    outs.iter()
        .try_fold(0u64, |acc, o| acc.checked_add(o.value.to_sat()))
}

fn output_data(outs: &[bitcoin::TxOut]) -> Vec<OutputData> {
    outs.iter()
        .map(|o| OutputData {
            value: o.value.to_sat(),
            script: o.script_pubkey.to_bytes(),
        })
        .collect()
}

impl Apply<'_> {
    /// Applies `fetched` through `writer` (not committed). On error the writer has discarded
    /// the block (and anything uncommitted before it).
    pub fn block<A: Application>(
        &self,
        app: &mut A,
        writer: &mut Writer<'_>,
        fetched: &Input,
    ) -> Result<BlockReport, EngineError> {
        let info = BlockInfo {
            height: fetched.height,
            hash: fetched.hash,
            time: fetched.header.time,
        };
        let mut rejected = Vec::new();
        let (parsed, migration_ops) = self.parse_all(app, fetched, &mut rejected)?;
        let mut migration_ops = migration_ops.into_iter().peekable();
        let mut bound = false;

        let verdicts = app.prepare(&info, &parsed);
        let header = BlockHeader {
            height: info.height,
            block_hash: Hash256(fetched.hash.to_byte_array()),
            prev_hash: Hash256(fetched.header.prev_blockhash.to_byte_array()),
        };
        let mut bw = writer.begin_block(header)?;
        let scope = BlockScope {
            info,
            staleness: self.staleness,
            seeds: self.seeds,
            fresh: OnceCell::new(),
        };
        let mut accepted = 0u32;
        let fault = |txid: Option<Txid>, source: HookError| EngineError::Hook {
            height: info.height,
            txid,
            source: Box::new(source),
        };
        for (i, p) in parsed.iter().enumerate() {
            while let Some(m) = migration_ops.next_if(|m| m.vtxindex < p.ctx.vtxindex) {
                accepted += self.migration_op(&mut bw, &m, &mut bound, &mut rejected)?;
            }
            let verdict = match verdicts.get(i).cloned().flatten() {
                Some(reject) => Err((Stage::Prepare, reject)),
                None => {
                    let savepoint = bw.savepoint();
                    let mut state = State::new(&mut bw, &scope);
                    match app.apply(&mut state, p) {
                        Ok(()) => Ok(state.into_records()),
                        Err(fail) => match HookError::from_fail(fail) {
                            Ok(e) => return Err(fault(Some(p.ctx.txid), e)),
                            Err(reject) => {
                                bw.revert(savepoint);
                                Err((Stage::Apply, reject))
                            }
                        },
                    }
                }
            };
            let records = match verdict {
                Ok(records) => records,
                Err((stage, reject)) => {
                    tracing::debug!(height = info.height, txid = %p.ctx.txid, %stage, "rejected: {reject}");
                    rejected.push(Rejected {
                        txid: p.ctx.txid,
                        vtxindex: Some(p.ctx.vtxindex),
                        opcode: p.ctx.opcode,
                        stage,
                        reject,
                    });
                    continue;
                }
            };
            let records = records
                .iter()
                .map(|r| record::encode(self.scheme, r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fault(Some(p.ctx.txid), e.into()))?;
            bw.add_op(stored_op(&p.ctx, records))
                .map_err(|e| fault(Some(p.ctx.txid), e.into()))?;
            accepted += 1;
        }
        for m in migration_ops {
            accepted += self.migration_op(&mut bw, &m, &mut bound, &mut rejected)?;
        }
        {
            let mut state = State::new(&mut bw, &scope);
            let finalized = app.finalize(&mut state);
            let emitted = state.into_records().len();
            match finalized {
                Ok(()) if emitted == 0 => {}
                Ok(()) => return Err(fault(None, HookError::RecordsInFinalize(emitted))),
                Err(fail) => {
                    let e = HookError::from_fail(fail).unwrap_or_else(HookError::RejectedBlock);
                    return Err(fault(None, e));
                }
            }
        }
        let summary = bw.finish()?;
        Ok(BlockReport {
            info,
            size: fetched.size,
            tx_count: fetched.tx_count,
            consensus_hash: summary.consensus_hash,
            ops_hash: summary.ops_hash,
            accepted,
            rejected,
        })
    }

    /// Applies one migration operation (`docs/migration.md`); returns 1 if it was accepted.
    fn migration_op(
        &self,
        bw: &mut vc_store::BlockWriter<'_, '_>,
        ctx: &OpContext,
        bound: &mut bool,
        rejected: &mut Vec<Rejected>,
    ) -> Result<u32, EngineError> {
        let Some(rules) = &self.migration else {
            return Ok(0);
        };
        match rules.apply(bw, ctx, bound)? {
            Ok(record) => {
                if ctx.opcode == rules.policy.announce
                    && let Ok(a) = vc_chash::migration::Announcement::decode(ctx.body())
                {
                    self.announced.set(Some(a.last_height));
                }
                bw.add_op(stored_op(ctx, vec![record]))?;
                Ok(1)
            }
            Err(reject) => {
                tracing::info!(height = ctx.height, txid = %ctx.txid, "migration operation rejected: {reject}");
                rejected.push(Rejected {
                    txid: ctx.txid,
                    vtxindex: Some(ctx.vtxindex),
                    opcode: ctx.opcode,
                    stage: Stage::Apply,
                    reject,
                });
                Ok(0)
            }
        }
    }

    /// Parses the block's candidates: the application's operations, and apart from them the
    /// migration operations (which the engine applies itself), numbered together.
    #[allow(clippy::type_complexity)]
    fn parse_all<A: Application>(
        &self,
        app: &A,
        fetched: &Input,
        rejected: &mut Vec<Rejected>,
    ) -> Result<(Vec<Parsed<A::Op>>, Vec<OpContext>), EngineError> {
        let mut parsed = Vec::new();
        let mut migration = Vec::new();
        for (txindex, tx, spent) in &fetched.txs {
            let Some((vout, opcode, payload)) = self.recognizer.payload(tx) else {
                continue;
            };
            let txid = tx.compute_txid();
            let bad = |detail: String| EngineError::BadBlock {
                height: fetched.height,
                hash: fetched.hash,
                txid,
                detail,
            };
            let senders = spent
                .as_ref()
                .filter(|s| s.len() == tx.input.len())
                .ok_or_else(|| bad("the source gave no spent outputs for it".into()))?;
            let fee = match (sum_values(senders), sum_values(&tx.output)) {
                (Some(i), Some(o)) if i >= o => i - o,
                _ => {
                    return Err(bad(
                        "its outputs are worth more than the outputs it spends".into()
                    ));
                }
            };
            let vtxindex = u32::try_from(parsed.len() + migration.len()).unwrap_or(u32::MAX);
            let ctx = OpContext {
                height: fetched.height,
                txid,
                txindex: *txindex,
                vtxindex,
                opcode,
                payload: payload.to_vec(),
                carrier_vout: u32::try_from(vout).unwrap_or(u32::MAX),
                inputs: tx.input.iter().map(|i| i.previous_output).collect(),
                senders: senders.clone(),
                outputs: tx.output.clone(),
                // Checked against the block's witness commitment by the source only when the
                // application declared that it reads them.
                witnesses: if self.recognizer.witnesses {
                    tx.input.iter().map(|i| i.witness.clone()).collect()
                } else {
                    Vec::new()
                },
                fee,
                body_start: self.recognizer.format.magic().len() + 1,
            };
            if self
                .migration
                .as_ref()
                .is_some_and(|m| m.policy.is_migration_opcode(opcode))
            {
                migration.push(ctx);
                continue;
            }
            match app.parse(&ctx) {
                Ok(op) => parsed.push(Parsed { ctx, op }),
                Err(reject) => {
                    tracing::debug!(height = fetched.height, %txid, "not parsed: {reject}");
                    rejected.push(Rejected {
                        txid,
                        vtxindex: None,
                        opcode: ctx.opcode,
                        stage: Stage::Parse,
                        reject,
                    });
                }
            }
        }
        Ok((parsed, migration))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use bitcoin::{Amount, ScriptBuf, TxOut, absolute::LockTime, transaction::Version};

    use super::*;

    fn tx(outputs: Vec<TxOut>) -> Transaction {
        Transaction {
            version: Version::ONE,
            lock_time: LockTime::ZERO,
            input: vec![],
            output: outputs,
        }
    }

    fn op_return(data: &[u8]) -> TxOut {
        TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::new_op_return(
                <&bitcoin::script::PushBytes>::try_from(data).unwrap(),
            ),
        }
    }

    #[test]
    fn recognize_follows_opcodes_and_markers() {
        let spec = AppSpec::new("t", "1", b"hi", 1).with_opcodes(b"+");
        assert!(
            recognize(&spec, &tx(vec![op_return(b"hi-1")]))
                .unwrap()
                .is_none()
        );
        assert!(
            recognize(&spec, &tx(vec![op_return(b"yo+1")]))
                .unwrap()
                .is_none()
        );
        let marker = ScriptBuf::new_op_return([7u8; 4]);
        let marked = spec.clone().with_marker(marker.clone());
        let unpaid = tx(vec![op_return(b"hi+1")]);
        assert!(recognize(&spec, &unpaid).unwrap().is_some());
        assert!(recognize(&marked, &unpaid).unwrap().is_none());
        let paid = tx(vec![
            TxOut {
                value: Amount::from_sat(1),
                script_pubkey: marker,
            },
            op_return(b"hi+1"),
        ]);
        let op = recognize(&marked, &paid).unwrap().unwrap();
        assert_eq!((op.vout, op.opcode, op.payload), (1, b'+', &b"hi+1"[..]));
    }

    /// The block sources hand the engine only the transactions the scan filter picks: every
    /// transaction the recognizer accepts must be one, whatever push form or marker it uses.
    #[test]
    fn every_recognized_transaction_is_a_scan_candidate() {
        let marker = ScriptBuf::new_op_return([7u8; 4]);
        let pay_marker = TxOut {
            value: Amount::from_sat(1),
            script_pubkey: marker.clone(),
        };
        let raw = |b: Vec<u8>| TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(b),
        };
        let mut outputs = vec![
            op_return(b"hi+1"),
            op_return(b"hi-1"),
            op_return(b"yo+1"),
            raw(vec![0x6a, 0x4c, 3, b'h', b'i', b'+']),
            raw(vec![0x6a, 0x4d, 3, 0, b'h', b'i', b'+']),
            raw(vec![0x6a, 0x4e, 3, 0, 0, 0, b'h', b'i', b'+']),
            raw(vec![0x6a, 0x00]),
            raw(vec![0x6a]),
            raw(vec![0x6a, 4, b'h', b'i', b'+', b'1', 0x51]),
            pay_marker,
        ];
        outputs.push(raw(vec![0x00, 0x14, 1, 2]));
        for spec in [
            AppSpec::new("t", "1", b"hi", 1).with_opcodes(b"+"),
            AppSpec::new("t", "1", b"hi", 1)
                .with_opcodes(b"+")
                .with_marker(marker.clone()),
        ] {
            let r = Recognizer::for_spec(&spec).unwrap();
            let filter = vc_source::scan::ScanFilter::new(r.format.magic(), &r.markers);
            let mut recognized = 0;
            // Every ordered pair and triple of outputs.
            for a in &outputs {
                for b in &outputs {
                    for c in [None, Some(&outputs[0]), Some(&outputs[9])] {
                        let mut outs = vec![a.clone(), b.clone()];
                        outs.extend(c.cloned());
                        let t = tx(outs);
                        if r.payload(&t).is_some() {
                            recognized += 1;
                            assert!(filter.matches(&t), "{t:?}");
                        }
                    }
                }
            }
            assert!(recognized > 10);
        }
    }

    #[test]
    fn recognize_refuses_an_unusable_spec() {
        let spec = AppSpec::new("t", "1", b"", 1).with_opcodes(b"+");
        assert!(matches!(
            recognize(&spec, &tx(vec![])),
            Err(EngineError::Spec(_))
        ));
    }
}
