//! A hostile Electrum server: the fuzzer writes the server's whole byte stream. electrum-client
//! parses it for the requests the source makes (raw transactions, merkle branches, headers),
//! then the source's own checks (`vc_source::electrum::check`, `HeaderChain`) judge the
//! answers. Whatever the bytes, nothing panics; a transaction that passes is the one asked
//! for (up to its witness, which the txid does not commit to); branches that pass give each transaction its true position in the block; headers that
//! connect link up from genesis.
//!
//! The fixture: the fixture chain's block with the most transactions, and its last three.
//! Request ids run from 0 in call order (`cargo xtask fuzz` seeds an honest stream).
#![no_main]

use std::cell::Cell;
use std::io::{Cursor, Read, Write};
use std::sync::OnceLock;

use bitcoin::{Network, Transaction, TxMerkleNode, Txid};
use electrum_client::{ElectrumApi, Param};
use electrum_client::raw_client::RawClient;
use libfuzzer_sys::fuzz_target;
use vc_source::{BlockSource, ChainView};
use vc_source::electrum::check;
use vc_source::electrum::headers::HeaderChain;

/// The server side of the connection: reads come from the fuzzer, writes are dropped.
struct Server(Cursor<Vec<u8>>);

impl Read for Server {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Server {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Fixture {
    height: u64,
    root: TxMerkleNode,
    txs: Vec<(Txid, Transaction)>,
    positions: Vec<u32>,
}

thread_local! {
    static IN_CLIENT: Cell<bool> = const { Cell::new(false) };
}

/// One request through `check::ask`, as the source makes it. electrum-client panics on some
/// answers and `ask` turns that into an error; libfuzzer-sys's hook aborts on every panic, so
/// the hook installed in `fixture` lets through only panics inside a request.
fn ask<T>(
    what: &str,
    request: impl FnOnce() -> Result<T, electrum_client::Error>,
) -> Result<T, vc_source::SourceError> {
    IN_CLIENT.with(|c| c.set(true));
    let result = check::ask(what, request);
    IN_CLIENT.with(|c| c.set(false));
    result
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CLIENT.with(Cell::get) {
                abort(info)
            }
        }));
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/regtest-chain/blocks");
        let source = vc_source::blk::BlkSource::open(vc_source::blk::BlkConfig::new(
            dir,
            Network::Regtest,
        ))
        .expect("the fixture chain");
        let tip = source.tip().expect("tip").height;
        let mut best: Option<(u64, bitcoin::Block)> = None;
        for h in 0..=tip {
            let block = source
                .block(&source.block_hash(h).expect("hash"))
                .expect("block")
                .block;
            if best.as_ref().is_none_or(|(_, b)| block.txdata.len() > b.txdata.len()) {
                best = Some((h, block));
            }
        }
        let (height, block) = best.expect("a block");
        let n = block.txdata.len();
        let from = n.saturating_sub(3).max(1);
        Fixture {
            height,
            root: block.header.merkle_root,
            txs: block.txdata[from..]
                .iter()
                .map(|t| (t.compute_txid(), t.clone()))
                .collect(),
            positions: (from as u32..n as u32).collect(),
        }
    })
}

fn without_witness(tx: &Transaction) -> Transaction {
    let mut tx = tx.clone();
    for input in &mut tx.input {
        input.witness.clear();
    }
    tx
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let client = RawClient::from(Server(Cursor::new(data.to_vec())));
    let txids: Vec<Txid> = f.txs.iter().map(|(t, _)| *t).collect();

    if let Ok(raws) = ask("transactions", || client.batch_transaction_get_raw(&txids)) {
        for ((txid, tx), raw) in f.txs.iter().zip(&raws) {
            if let Ok(got) = check::transaction(f.height, txid, raw) {
                // The txid commits to everything but the witness, which no Electrum call can
                // prove: a server may alter it, and no application ever sees it.
                assert_eq!(
                    without_witness(&got),
                    without_witness(tx),
                    "a transaction passed that is not the one asked for"
                );
            }
        }
    }

    let asks: Vec<(Txid, usize)> = txids.iter().map(|t| (*t, f.height as usize)).collect();
    if let Ok(proofs) = ask("branches", || client.batch_transaction_get_merkle(&asks)) {
        if let Ok(positions) = check::branches(f.height, f.root, &f.txs, &proofs) {
            assert_eq!(positions, f.positions, "branches passed at false positions");
        }
    }

    // The source asks for headers with a raw call: electrum-client's `block_headers` panics
    // on a count larger than the bytes sent (this target's first finding).
    if let Ok(answer) = ask("headers", || {
        client.raw_call(
            "blockchain.block.headers",
            [Param::Usize(1), Param::Usize(16)],
        )
    }) && let Ok(headers) = check::headers(1, 16, &answer)
    {
        assert!(headers.len() <= 16);
        let mut chain = HeaderChain::new(Network::Regtest);
        if chain.connect("fuzz", 0, &headers).is_ok() {
            for h in 1..=chain.tip_height() {
                let header = chain.header(h).expect("a connected height has a header");
                assert_eq!(Some(header.prev_blockhash), chain.hash(h - 1));
            }
        }
    }
});
