//! `virtualchain light`: a light client that trusts one consensus hash and verifies everything
//! else an untrusted server says. Exit codes: 0 proven, 1 refuted, 2 unreachable or malformed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use vc_chash::VerifiedBlock;
use vc_light::{LightClient, LightError, Trusted};
use vc_names::history::NameHistory;

/// The answer was proven.
const PROVEN: u8 = 0;
/// A proof or a claim of the server was refuted.
const REFUTED: u8 = 1;
/// The server could not be reached, or answered nonsense or an error.
const UNANSWERED: u8 = 2;

/// Query an untrusted server and verify its answers against a trusted consensus hash.
#[derive(Debug, clap::Subcommand)]
pub enum LightCommand {
    /// Fetch the proof of one block's records and verify it.
    Verify {
        #[command(flatten)]
        common: Common,
        /// The block whose records to prove (at most the trusted height).
        #[arg(long)]
        height: u64,
    },
    /// Any application on a v3 server: one state key's value, or its absence, proven with one
    /// state proof.
    State {
        /// The state namespace (for the names app: names, namespaces, preorders, owners).
        namespace: String,
        /// The key: its text, or hex with --hex.
        key: String,
        /// The key is hex bytes, not text.
        #[arg(long)]
        hex: bool,
        /// The height whose state to prove (default: the trusted height).
        #[arg(long)]
        height: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// The names app: a name's current record, or its absence, proven with one state proof
    /// on a v3 server; on a legacy or v2 server, its history with every step proven (which
    /// cannot show that no step was left out).
    Name {
        /// The fully qualified name (e.g. alice.id).
        name: String,
        #[command(flatten)]
        common: Common,
        /// The database's consensus-hash scheme, if you know it (by default the server's
        /// word). Saying v3 makes a server that answers without a state proof fail, instead of
        /// falling back to the history.
        #[arg(long, value_name = "SCHEME")]
        scheme: Option<vc_chash::Scheme>,
    },
}

/// What every light query needs.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The server (http://host:port or https://host\[:port\]; https servers are checked
    /// against Mozilla's root certificates).
    #[arg(long)]
    server: String,
    /// The trusted consensus hash and its height, as HEIGHT:HASH (from your own node or a
    /// friend's: `virtualchain status`).
    #[arg(long, value_parser = parse_trusted)]
    trusted: Trusted,
    /// The application's first block; by default the server's word, which a lie cannot turn
    /// into a false proof, only a failed one.
    #[arg(long)]
    first_block: Option<u64>,
    /// How long the whole command may take, every request included: 30s, 500ms, 2m (a bare
    /// number is seconds; at most 24h).
    #[arg(long, default_value = "30s", value_parser = crate::units::parse_duration)]
    timeout: Duration,
}

/// `HEIGHT:HASH`, with the cause of a failure in the message (clap shows only the error's own).
fn parse_trusted(s: &str) -> Result<Trusted, String> {
    s.parse::<Trusted>()
        .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
}

impl Common {
    fn client(&self) -> Result<(LightClient, u64), LightError> {
        // One deadline for the whole command: the server's answers cannot stretch it.
        let overall = self
            .timeout
            .max(Duration::from_millis(1))
            .min(vc_light::MAX_TIMEOUT);
        let client = LightClient::builder(&self.server)
            .timeout(overall)
            .deadline(Instant::now() + overall)
            .build()?;
        let first = match self.first_block {
            Some(f) => f,
            None => client.first_block()?,
        };
        Ok((client, first))
    }
}

pub fn run(cmd: LightCommand) -> ExitCode {
    let result = match cmd {
        LightCommand::Verify { common, height } => verify(&common, height),
        LightCommand::Name {
            name,
            common,
            scheme,
        } => name_query(&common, &name, scheme),
        LightCommand::State {
            namespace,
            key,
            hex,
            height,
            common,
        } => state_query(&common, &namespace, &key, hex, height),
    };
    ExitCode::from(match result {
        Ok(code) => code,
        // One line: the error and its causes joined with ": ".
        Err(e) if e.is_refutation() => {
            eprintln!(
                "refuted: {}",
                clean(&format!("{:#}", anyhow::Error::new(e)))
            );
            REFUTED
        }
        Err(e) => {
            eprintln!("error: {}", clean(&format!("{:#}", anyhow::Error::new(e))));
            UNANSWERED
        }
    })
}

/// Text that came from the server (or from records it served), made safe for a terminal:
/// control characters escaped, and long text trimmed.
fn clean(text: &str) -> String {
    vc_light::printable_text(text, 1_000)
}

fn printable(record: &[u8]) -> String {
    match std::str::from_utf8(record) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => format!("0x{}", vc_chash::hex::encode(record)),
    }
}

/// Legacy proofs cannot stop a server from substituting another block's records
/// (`docs/proofs.md`); say so whenever one is believed.
fn warn_legacy(b: &VerifiedBlock) {
    if b.scheme == vc_chash::Scheme::Legacy {
        eprintln!(
            "note: legacy consensus hashes do not bind which prior hash belongs to which height, so a \
             malicious server can prove another block's records in this block's place (docs/proofs.md); \
             v2 stores do not have this weakness"
        );
    }
}

fn print_block(b: &VerifiedBlock, trusted: &Trusted) {
    warn_legacy(b);
    outln!(
        "proven: block {} against trusted block {} ({})",
        b.height,
        trusted.height,
        trusted.consensus_hash
    );
    outln!("consensus hash: {}", b.consensus_hash);
    outln!("ops hash: {}", b.ops_hash);
    if let Some(h) = b.block_hash {
        outln!("block hash: {}", h.reversed());
    }
    outln!("records: {}", b.records.len());
    for r in &b.records {
        outln!("  {}", printable(r));
    }
}

fn verify(common: &Common, height: u64) -> Result<u8, LightError> {
    let (client, first) = common.client()?;
    let block = client.verify(first, &common.trusted, height)?;
    print_block(&block, &common.trusted);
    Ok(PROVEN)
}

fn name_query(
    common: &Common,
    name: &str,
    scheme: Option<vc_chash::Scheme>,
) -> Result<u8, LightError> {
    let (client, first) = common.client()?;
    // A legacy-sized trusted hash settles it; otherwise the server's word, and a server that
    // names no scheme gets the history.
    let scheme = match scheme {
        Some(s) => s,
        None if common.trusted.consensus_hash.fits(vc_chash::Scheme::Legacy) => {
            vc_chash::Scheme::Legacy
        }
        None => client.scheme()?.unwrap_or(vc_chash::Scheme::V2),
    };
    if scheme.commits_state() {
        name_state(&client, first, common, name)
    } else {
        name_history(&client, first, common, name)
    }
}

/// Any v3 application: one key's value at `height` (default: the trusted height), or its
/// absence, from one state proof.
fn state_query(
    common: &Common,
    namespace: &str,
    key: &str,
    hex: bool,
    height: Option<u64>,
) -> Result<u8, LightError> {
    let key_bytes = if hex {
        match vc_chash::hex::decode(key) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: --hex key {}: {e}", clean(key));
                return Ok(UNANSWERED);
            }
        }
    } else {
        key.as_bytes().to_vec()
    };
    let m = height.unwrap_or(common.trusted.height);
    if m > common.trusted.height {
        eprintln!(
            "error: --height {m} is above the trusted height {}: trust a newer consensus hash",
            common.trusted.height
        );
        return Ok(UNANSWERED);
    }
    let (client, first) = common.client()?;
    let proven = client.state(first, &common.trusted, namespace, &key_bytes, m)?;
    outln!(
        "proven: {} key {} at block {m} against trusted block {} ({})",
        clean(namespace),
        clean(key),
        common.trusted.height,
        common.trusted.consensus_hash
    );
    match proven.value {
        Some(v) => outln!("value: {}", vc_chash::hex::encode(&v)),
        None => outln!("value: none (the key is absent)"),
    }
    outln!("state root: {}", proven.state_root);
    Ok(PROVEN)
}

/// v3: the name's record at the trusted height, or its absence, from one state proof.
fn name_state(
    client: &LightClient,
    first: u64,
    common: &Common,
    name: &str,
) -> Result<u8, LightError> {
    let n = common.trusted.height;
    let proven = client.state(
        first,
        &common.trusted,
        vc_names::state::NAMES.name(),
        name.as_bytes(),
        n,
    )?;
    outln!(
        "proven: the state of {name} at block {n} ({}), by one state proof",
        common.trusted.consensus_hash
    );
    let Some(value) = proven.value else {
        outln!("state: no such name");
        return Ok(PROVEN);
    };
    let record: vc_names::state::NameRecord = match vc_codec::storage::from_bytes(&value) {
        Ok(r) => r,
        Err(e) => {
            // The value is proven, so the chain itself holds it: this build reads another
            // encoding of the names app.
            eprintln!(
                "error: the proven record of {name} does not decode as this build's names record: {e}"
            );
            return Ok(UNANSWERED);
        }
    };
    outln!(
        "state: owner {}  value {}  {}  registered {}  last block {}  tx {}",
        vc_chash::hex::encode(&record.owner),
        record
            .value_hash
            .map_or("-".into(), |v| vc_chash::hex::encode(&v)),
        if record.revoked { "revoked" } else { "active" },
        record.registered,
        record.last_block,
        vc_chash::Hash256(record.last_txid).reversed()
    );
    outln!("state root: {}", proven.state_root);
    Ok(PROVEN)
}

fn name_history(
    client: &LightClient,
    first: u64,
    common: &Common,
    name: &str,
) -> Result<u8, LightError> {
    let n = common.trusted.height;
    let (state, history) = client.key("names", name)?;
    let (provable, later): (Vec<u64>, Vec<u64>) = history.iter().partition(|h| **h <= n);
    let mut blocks = Vec::new();
    for &h in &provable {
        let b = client.verify(first, &common.trusted, h)?;
        if !b
            .records
            .iter()
            .any(|r| vc_names::history::record_name(r).as_deref() == Some(name))
        {
            eprintln!(
                "refuted: the server lists block {h} in {name}'s history, but the block's proven records have no operation on it"
            );
            return Ok(REFUTED);
        }
        blocks.push(b);
    }
    if let Some(b) = blocks.first() {
        warn_legacy(b);
    }
    let replayed =
        match NameHistory::replay(name, blocks.iter().map(|b| (b.height, &b.records[..]))) {
            Ok(r) => r,
            Err(e) => {
                eprintln!(
                    "refuted: the proven records do not form a history: {}",
                    clean(&e.to_string())
                );
                return Ok(REFUTED);
            }
        };
    outln!(
        "{name}: {} proven operations against trusted block {n} ({})",
        replayed.events.len(),
        common.trusted.consensus_hash
    );
    for e in &replayed.events {
        outln!(
            "  block {:>8}  {:<8}  owner {}  value {}  tx {}",
            e.height,
            clean(e.kind),
            clean(&e.owner),
            clean(e.value_hash.as_deref().unwrap_or("-")),
            clean(&e.txid)
        );
    }
    outln!(
        "state: owner {}  value {}  {}",
        clean(replayed.owner.as_deref().unwrap_or("-")),
        clean(replayed.value_hash.as_deref().unwrap_or("-")),
        if replayed.revoked {
            "revoked"
        } else {
            "active"
        }
    );
    if !later.is_empty() {
        outln!(
            "not proven: {} later operations above the trusted height (blocks {later:?}); trust a newer consensus hash to prove them",
            later.len()
        );
        return Ok(PROVEN);
    }
    // Everything the server listed is proven: its stated record must agree with the replay.
    let str_field = |k: &str| state.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let claimed_revoked = state.get("revoked").and_then(serde_json::Value::as_bool);
    if !state.is_null()
        && (str_field("owner") != replayed.owner
            || str_field("value_hash") != replayed.value_hash
            || claimed_revoked != Some(replayed.revoked))
    {
        eprintln!(
            "refuted: the server's record of {name} contradicts its proven history: {}",
            clean(&state.to_string())
        );
        return Ok(REFUTED);
    }
    outln!(
        "completeness: not proven. The history is the server's list: a proof shows each listed operation happened, not that none was left out (a v3 database proves the current record itself)"
    );
    Ok(PROVEN)
}
