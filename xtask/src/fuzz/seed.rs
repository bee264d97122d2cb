//! Seed corpora for the fuzz targets, made from the committed fixture chain
//! (`testdata/regtest-chain`) and from what the project's own code produces from it: real
//! proofs, an indexed names database, its snapshot and stored records, and the honest answers
//! of a Core node and an Electrum server.

use std::fs;
use std::path::Path;
use vc_store::StateReadExt;

use anyhow::{Context, Result};
use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use vc_chash::hex;
use vc_codec::carrier::{Carrier, CarrierRule};
use vc_source::blk::{BlkConfig, BlkSource};
use vc_source::{BlockSource, ChainView};

/// Writes `bytes` as a seed of `target` (named by content, so reruns add nothing twice).
fn put(root: &Path, target: &str, bytes: &[u8]) -> Result<()> {
    let dir = root.join("fuzz/corpus").join(target);
    fs::create_dir_all(&dir)?;
    let name = bitcoin::hashes::sha256::Hash::hash(bytes);
    fs::write(dir.join(format!("seed-{name}")), bytes)?;
    Ok(())
}

/// Seed corpora from the fixture chain (`testdata/regtest-chain`).
pub(super) fn seed(root: &Path) -> Result<()> {
    let blocks_dir = root.join("testdata/regtest-chain/blocks");
    let source = BlkSource::open(BlkConfig::new(&blocks_dir, bitcoin::Network::Regtest))
        .context("opening the fixture chain")?;
    let tip = source.tip()?.height;
    let carrier = Carrier::new(CarrierRule::Legacy, 80).context("the legacy carrier")?;
    let mut headers = Vec::new();
    // The Electrum target's block: the first with the most transactions.
    let mut busiest: Option<(u64, bitcoin::Block)> = None;
    for h in 0..=tip {
        let hash = source.block_hash(h)?;
        let block = source.block(&hash)?.block;
        if h > 0 && h % 25 == 0 {
            let spent = source.spent_outputs(&hash, &block)?;
            seed_core(root, &block, &spent.0)?;
        }
        if busiest
            .as_ref()
            .is_none_or(|(_, b)| block.txdata.len() > b.txdata.len())
        {
            busiest = Some((h, block.clone()));
        }
        if h > 0 && h <= 64 {
            headers.extend(serialize(&block.header));
        }
        if block.txdata.len() < 2 {
            continue;
        }
        put(root, "block_body", &serialize(&block))?;
        let txids: Vec<bitcoin::Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
        for (pos, tx) in block.txdata.iter().enumerate() {
            put(root, "tx_carrier", &serialize(tx))?;
            let mut m = txids[pos].to_byte_array().to_vec();
            m.extend((pos as u16).to_le_bytes());
            for s in vc_source::electrum::merkle::branch_for(&txids, pos) {
                m.extend(s);
            }
            put(root, "merkle_branch", &m)?;
            if let Ok(Some(c)) = carrier.extract(tx) {
                let data = c.data;
                put(root, "payload_decode", data)?;
                if data.starts_with(vc_names::wire::MAGIC) && data.len() > 2 {
                    put(root, "names_wire", &data[2..])?;
                }
            }
        }
    }
    put(root, "header_chain", &headers)?;
    if let Some((height, block)) = &busiest {
        seed_electrum(root, *height, block, &headers[..16 * 80])?;
    }
    seed_store(root, &blocks_dir)?;
    // Fast-query proofs in both schemes over a synthetic 300-block history.
    for scheme in [vc_chash::Scheme::Legacy, vc_chash::Scheme::V2] {
        let mut history = vc_chash::history::MemoryHistory::new(scheme, 100);
        for h in 100u64..400 {
            let records: Vec<Vec<u8>> = (0..h % 3)
                .map(|i| format!("op-{h}-{i}").into_bytes())
                .collect();
            history.push_block(vc_chash::Hash256([h as u8; 32]), &records);
        }
        for (trusted, target) in [(399, 100), (399, 398), (250, 101), (120, 119)] {
            let proof = vc_chash::proof::prove(&history, trusted, target)
                .map_err(|e| anyhow::anyhow!("a seed proof: {e:?}"))?;
            put(root, "proof_verify", &proof.encode())?;
        }
    }
    // Undo records straight from the rev files (de-obfuscated with xor.dat), and the first
    // blk/rev pair as a blocks directory.
    let key = fs::read(blocks_dir.join("xor.dat")).unwrap_or_else(|_| vec![0; 8]);
    let plain = |name: &str| -> Result<Vec<u8>> {
        let mut bytes =
            fs::read(blocks_dir.join(name)).with_context(|| format!("reading {name}"))?;
        for (i, b) in bytes.iter_mut().enumerate() {
            *b ^= key.get(i % key.len().max(1)).copied().unwrap_or(0);
        }
        Ok(bytes)
    };
    let rev = plain("rev00000.dat")?;
    let mut at = 0;
    let mut records = 0;
    while at + 8 <= rev.len() && records < 200 {
        let size =
            u32::from_le_bytes([rev[at + 4], rev[at + 5], rev[at + 6], rev[at + 7]]) as usize;
        let (start, end) = (at + 8, at + 8 + size);
        if size == 0 || end + 32 > rev.len() {
            break;
        }
        put(root, "block_undo", &rev[start..end])?;
        at = end + 32;
        records += 1;
    }
    // The blk-file target reads files as Core wrote them (obfuscated with its own xor.dat,
    // which the fuzzed directory lacks): give it the plain bytes, trimmed to keep runs fast.
    let blk = plain("blk00000.dat")?;
    let blk = &blk[..blk.len().min(64 * 1024)];
    let rev = &rev[..rev.len().min(16 * 1024)];
    let mut dir_seed = (blk.len() as u32).to_le_bytes().to_vec();
    dir_seed.extend(blk);
    dir_seed.extend(rev);
    put(root, "blk_files", &dir_seed)?;
    seed_vm(root)
}

/// The VM target: the guest modules `cargo xtask guests` built, if any (first byte 0: a
/// module), and operations for its fixed module (first byte 1: bodies split at 0xff, each
/// starting with its opcode's index: echo, loop, recurse).
fn seed_vm(root: &Path) -> Result<()> {
    if let Ok(dir) = fs::read_dir(crate::target_dir(root).join("guests")) {
        for entry in dir.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                let mut seed = vec![0];
                seed.extend(fs::read(&path)?);
                put(root, "vm_module", &seed)?;
                // Contracts too (an application module is refused as one, quickly).
                put(root, "contract_module", &seed)?;
            }
        }
    }
    put(root, "vm_module", b"\x01\x00hello\xff\x01\xff\x02\xff\x00x")?;
    // A contract envelope's leaf script (odd first byte).
    put(
        root,
        "contract_module",
        b"\x01\x00\x63\x0bvc-contract\x04code\x68",
    )?;
    Ok(())
}

/// Honest Core answers about `block`: REST's binary spent outputs (kind byte 0) and
/// `getblock <hash> 3`'s JSON (kind byte 1), as the `core_responses` target reads them.
fn seed_core(root: &Path, block: &bitcoin::Block, spent: &[Vec<bitcoin::TxOut>]) -> Result<()> {
    use bitcoin::consensus::Encodable;
    let mut rest = vec![0u8];
    bitcoin::VarInt(spent.len() as u64).consensus_encode(&mut rest)?;
    for list in spent {
        bitcoin::VarInt(list.len() as u64).consensus_encode(&mut rest)?;
        for out in list {
            out.consensus_encode(&mut rest)?;
        }
    }
    put(root, "core_responses", &rest)?;
    let txs: Vec<serde_json::Value> = block
        .txdata
        .iter()
        .zip(spent)
        .enumerate()
        .map(|(i, (tx, list))| {
            let vin: Vec<serde_json::Value> = if i == 0 {
                vec![serde_json::json!({"coinbase": "00", "sequence": 0})]
            } else {
                list.iter()
                    .map(|o| {
                        serde_json::json!({"prevout": {
                            "value": o.value.to_btc(),
                            "scriptPubKey": {"hex": hex::encode(o.script_pubkey.as_bytes())},
                        }})
                    })
                    .collect()
            };
            serde_json::json!({"txid": tx.compute_txid().to_string(), "vin": vin})
        })
        .collect();
    let mut rpc = vec![1u8];
    rpc.extend(serde_json::to_vec(&serde_json::json!({ "tx": txs }))?);
    put(root, "core_responses", &rpc)
}

/// The honest Electrum server stream the `electrum_responses` target expects: the last three
/// transactions of `block` (at `height`), their merkle branches, then `headers` (the 16 from
/// height 1), with request ids from 0 in that order.
fn seed_electrum(root: &Path, height: u64, block: &bitcoin::Block, headers: &[u8]) -> Result<()> {
    let n = block.txdata.len();
    let from = n.saturating_sub(3).max(1);
    let txids: Vec<bitcoin::Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
    let mut lines = Vec::new();
    for tx in &block.txdata[from..] {
        lines.push(serde_json::json!(hex::encode(&serialize(tx))));
    }
    for pos in from..n {
        let merkle: Vec<String> = vc_source::electrum::merkle::branch_for(&txids, pos)
            .into_iter()
            .map(|mut s| {
                s.reverse();
                hex::encode(&s)
            })
            .collect();
        lines.push(serde_json::json!({"block_height": height, "merkle": merkle, "pos": pos}));
    }
    lines.push(
        serde_json::json!({"count": headers.len() / 80, "hex": hex::encode(headers), "max": 2016}),
    );
    let mut stream = Vec::new();
    for (id, result) in lines.into_iter().enumerate() {
        stream.extend(serde_json::to_vec(
            &serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}),
        )?);
        stream.push(b'\n');
    }
    put(root, "electrum_responses", &stream)
}

/// Indexes the fixture chain with the names app, then seeds `snapshot_import` with the
/// database's snapshot (without its end frame, which the target appends) and
/// `stored_records` with every kind of record in it (kind byte first, as the target reads).
fn seed_store(root: &Path, blocks_dir: &Path) -> Result<()> {
    use std::sync::atomic::AtomicBool;
    use vc_codec::storage;
    use vc_names::state::{NAMES, NAMESPACE_PREORDERS, NAMESPACE_RECORDS, Owned, PREORDERS};
    use vc_store::snapshot::{self, Frame};

    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(root.join("testdata/regtest-chain/chain.json")).context("chain.json")?,
    )?;
    let first = manifest["names"]["first_block"]
        .as_u64()
        .context("chain.json has no names.first_block")?;
    let dir = tempfile::tempdir()?;
    let source = BlkSource::open(BlkConfig::new(blocks_dir, bitcoin::Network::Regtest))?;
    let mut engine = vc_engine::Engine::open(
        vc_names::NamesApp::new(vc_names::NamesConfig::regtest(first)),
        dir.path().join("names.redb"),
        vc_source::Source::blocks(source),
        vc_engine::EngineConfig::default().with_confirmations(1),
    )?;
    engine.sync(None, &AtomicBool::new(false), &mut vc_engine::NoObserver)?;
    let store = engine.store();
    let snap = dir.path().join("names.snap");
    snapshot::export(&store.view()?, &snap)?;
    let bytes = fs::read(&snap)?;

    let record = |kind: u8, bytes: Vec<u8>| -> Result<()> {
        let mut seed = vec![kind];
        seed.extend(bytes);
        put(root, "stored_records", &seed)
    };
    let mut at = 8;
    let mut end_at = bytes.len();
    let (mut blocks, mut undos) = (0, 0);
    while at + 4 <= bytes.len() {
        let len =
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let body = bytes
            .get(at + 4..at + 4 + len)
            .context("a truncated frame in our own snapshot")?;
        let frame: Frame = storage::from_bytes(body)?;
        match &frame {
            Frame::Header { meta, .. } => record(0, storage::to_bytes(meta)?)?,
            Frame::Block { entry, ops, .. } if blocks < 40 || !ops.is_empty() => {
                blocks += 1;
                record(1, storage::to_bytes(entry)?)?;
                for op in ops {
                    record(2, storage::to_bytes(op)?)?;
                }
            }
            Frame::Undo { log, .. } if undos < 40 => {
                undos += 1;
                record(3, storage::to_bytes(log)?)?;
            }
            Frame::End(_) => end_at = at,
            _ => {}
        }
        if blocks < 20 || !matches!(frame, Frame::Block { .. }) {
            record(4, body.to_vec())?;
        }
        at += 4 + len;
    }
    put(root, "snapshot_import", &bytes[..end_at])?;

    let view = store.view()?;
    for (_, v) in view.range(&NAMESPACE_RECORDS, None, None)? {
        record(5, storage::to_bytes(&v)?)?;
    }
    for preorders in [NAMESPACE_PREORDERS, PREORDERS] {
        for (_, v) in view.range(&preorders, None, None)? {
            record(6, storage::to_bytes(&v)?)?;
        }
    }
    for (_, v) in view.range(&NAMES, None, None)? {
        record(7, storage::to_bytes(&v)?)?;
    }
    record(8, storage::to_bytes(&Owned)?)?;
    // A v3 state tree page: an inner node, a leaf and an inner node at the last slot.
    let mut page = vc_chash::state::page::Page::default();
    page.set(0, &vc_chash::state::Node::Inner(vc_chash::Hash256([1; 32])));
    page.set(
        9,
        &vc_chash::state::Node::Leaf {
            path: vc_chash::Hash256([2; 32]),
            value_hash: vc_chash::Hash256([3; 32]),
        },
    );
    page.set(
        254,
        &vc_chash::state::Node::Inner(vc_chash::Hash256([4; 32])),
    );
    record(9, page.encode())?;
    Ok(())
}
