//! `virtualchain compare`: where two nodes' consensus hashes part.
//!
//! A consensus hash commits to the consensus hashes of earlier blocks (its geometric priors
//! start with the block just before), so two nodes that agree at a height agree at every
//! height below it. Agreement is therefore monotone and the first disagreement is found by
//! binary search over `GET /v1/blocks/{h}`: one `/v1/tip` request per server, the common tip,
//! the first block, then one request per halving, at most `ceil(log2 n) + 3` requests per
//! server for `n` common blocks (the promised bound is `2 ceil(log2 n) + 4`). A local database
//! is read the same way, through one consistent view.
//!
//! Exit codes: 0 the nodes agree on every block both have, 1 they diverge (or are not the same
//! application instance), 2 a node is unreachable, answered something malformed, or the
//! arguments name other than two nodes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vc_chash::{ConsensusHash, Hash256, Scheme};
use vc_light::LightClient;
use vc_store::{ReadOnlyStore, View};

/// Every block both nodes have agrees.
const AGREE: u8 = 0;
/// The nodes diverge.
const DIVERGED: u8 = 1;
/// A node is unreachable or answered something malformed.
const UNANSWERED: u8 = 2;

/// `virtualchain compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// A node's HTTP server (`virtualchain serve`): http://host:port or https://host\[:port\]
    /// (give two, or one with one --db). Nodes are read from the command line only, never from
    /// the environment or the configuration file.
    #[arg(long = "server", value_name = "URL")]
    servers: Vec<String>,
    /// A local database, read-only (give two, or one with one --server).
    #[arg(long = "db", value_name = "FILE")]
    dbs: Vec<PathBuf>,
    /// How long the whole comparison may take, every request included: 60s, 500ms, 2m (a bare
    /// number is seconds).
    #[arg(long, default_value = "60s", value_parser = crate::units::parse_duration)]
    timeout: Duration,
}

/// Why a node gave no usable answer (exit 2).
#[derive(Debug, thiserror::Error)]
enum SideError {
    /// The server failed, or could not be reached.
    #[error(transparent)]
    Light(#[from] vc_light::LightError),
    /// The database failed.
    #[error("{path}: {source}")]
    Store {
        /// The database.
        path: String,
        /// The cause.
        #[source]
        source: vc_store::StoreError,
    },
    /// An answer that cannot be right.
    #[error("{node}: {detail}")]
    Malformed {
        /// The node.
        node: String,
        /// What is wrong.
        detail: String,
    },
}

/// What a node says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Head {
    app: String,
    version: String,
    scheme: Scheme,
    first_block: u64,
    network: String,
    tip: Option<u64>,
}

/// One block as a node has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Answer {
    /// The Bitcoin block hash, in display order.
    block_hash: Hash256,
    consensus_hash: ConsensusHash,
}

impl Answer {
    fn json(&self) -> Value {
        json!({
            "block_hash": self.block_hash.to_string(),
            "consensus_hash": self.consensus_hash.to_string(),
        })
    }
}

/// A node under comparison: a server or a database.
trait Node {
    /// How the node is named in the output.
    fn label(&self) -> &str;
    /// Its application and tip.
    fn head(&mut self) -> Result<Head, SideError>;
    /// Its block at `height`, which must be at most its tip.
    fn block(&mut self, height: u64, scheme: Scheme) -> Result<Answer, SideError>;
    /// Requests (or reads) made so far.
    fn requests(&self) -> u64;
}

/// A node's HTTP server.
struct Server {
    url: String,
    client: LightClient,
    requests: u64,
}

impl Server {
    fn new(url: &str, deadline: Instant, timeout: Duration) -> Result<Server, SideError> {
        let client = LightClient::builder(url)
            .timeout(timeout)
            .deadline(deadline)
            .build()?;
        Ok(Server {
            url: client.base().to_owned(),
            client,
            requests: 0,
        })
    }

    fn malformed(&self, detail: impl Into<String>) -> SideError {
        SideError::Malformed {
            node: self.url.clone(),
            detail: detail.into(),
        }
    }

    fn get(&mut self, path: &str) -> Result<Value, SideError> {
        self.requests += 1;
        Ok(self.client.get_json(path)?)
    }
}

/// A short printable rendering of a server's text.
fn shown(text: &str) -> String {
    vc_light::printable_text(text, 80)
}

impl Node for Server {
    fn label(&self) -> &str {
        &self.url
    }

    fn head(&mut self) -> Result<Head, SideError> {
        let v = self.get("/v1/tip")?;
        let text = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .map(shown)
                .ok_or_else(|| self.malformed(format!("/v1/tip has no string {p}")))
        };
        let scheme = text("/app/scheme")?
            .parse::<Scheme>()
            .map_err(|_| self.malformed("/v1/tip names an unknown scheme"))?;
        let first_block = v
            .pointer("/app/first_block")
            .and_then(Value::as_u64)
            .ok_or_else(|| self.malformed("/v1/tip has no app.first_block"))?;
        let tip = match v.get("tip") {
            None => return Err(self.malformed("/v1/tip has no tip")),
            Some(Value::Null) => None,
            Some(t) => Some(
                t.get("height")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| self.malformed("/v1/tip has no tip.height"))?,
            ),
        };
        if tip.is_some_and(|t| t < first_block) {
            return Err(self.malformed(format!(
                "its tip {tip:?} is below its first block {first_block}"
            )));
        }
        Ok(Head {
            app: text("/app/name")?,
            version: text("/app/version")?,
            network: text("/app/network")?,
            scheme,
            first_block,
            tip,
        })
    }

    fn block(&mut self, height: u64, scheme: Scheme) -> Result<Answer, SideError> {
        let v = self
            .get(&format!("/v1/blocks/{height}"))
            .map_err(|e| match e {
                SideError::Light(vc_light::LightError::Server { status: 404, .. }) => {
                    self.malformed(format!("it has no block {height}, below the tip it stated"))
                }
                e => e,
            })?;
        if v.get("height").and_then(Value::as_u64) != Some(height) {
            return Err(self.malformed(format!("asked for block {height}, it answered another")));
        }
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| self.malformed(format!("block {height} has no string {k}")))
        };
        let consensus_hash = field("consensus_hash")?
            .parse::<ConsensusHash>()
            .ok()
            // v3 hashes have v2's shape: `fits`, not `scheme()`, tells them apart from legacy.
            .filter(|ch| ch.fits(scheme))
            .ok_or_else(|| {
                self.malformed(format!(
                    "block {height}'s consensus hash is not a {} hash",
                    scheme.name()
                ))
            })?;
        let block_hash = Hash256::from_display_hex(field("block_hash")?)
            .map_err(|_| self.malformed(format!("block {height}'s block hash is not 64 hex")))?
            .reversed();
        Ok(Answer {
            block_hash,
            consensus_hash,
        })
    }

    fn requests(&self) -> u64 {
        self.requests
    }
}

/// A local database, read through one consistent view.
struct Database {
    label: String,
    store: ReadOnlyStore,
    view: Option<View>,
    reads: u64,
}

impl Database {
    fn open(path: &std::path::Path) -> Result<Database, SideError> {
        let label = path.display().to_string();
        let store = ReadOnlyStore::open(path).map_err(|source| SideError::Store {
            path: label.clone(),
            source,
        })?;
        Ok(Database {
            label,
            store,
            view: None,
            reads: 0,
        })
    }

    fn store_err(&self, source: vc_store::StoreError) -> SideError {
        SideError::Store {
            path: self.label.clone(),
            source,
        }
    }

    fn view(&mut self) -> Result<&View, SideError> {
        if self.view.is_none() {
            let view = self.store.view().map_err(|e| self.store_err(e))?;
            self.view = Some(view);
        }
        self.view.as_ref().ok_or_else(|| SideError::Malformed {
            node: self.label.clone(),
            detail: "no view".into(),
        })
    }
}

impl Node for Database {
    fn label(&self) -> &str {
        &self.label
    }

    fn head(&mut self) -> Result<Head, SideError> {
        self.reads += 1;
        let meta = self.store.meta().clone();
        let scheme = self.store.scheme();
        let tip = self.view()?.tip();
        let tip = tip.map_err(|e| self.store_err(e))?.map(|t| t.height);
        Ok(Head {
            app: meta.app_name,
            version: meta.app_version,
            scheme,
            first_block: meta.first_block,
            network: meta.network,
            tip,
        })
    }

    fn block(&mut self, height: u64, _scheme: Scheme) -> Result<Answer, SideError> {
        self.reads += 1;
        let view = self.view()?;
        let read = view.chain_entry(height).and_then(|e| {
            e.map(|e| Ok((Hash256(e.block_hash), view.consensus_hash_of(height, &e)?)))
                .transpose()
        });
        match read.map_err(|e| self.store_err(e))? {
            Some((hash, consensus_hash)) => Ok(Answer {
                block_hash: hash.reversed(),
                consensus_hash,
            }),
            None => Err(SideError::Malformed {
                node: self.label.clone(),
                detail: format!("no block {height} below its tip"),
            }),
        }
    }

    fn requests(&self) -> u64 {
        self.reads
    }
}

/// What the comparison found.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Not the same application instance: their hashes cannot agree.
    DifferentApps,
    /// Neither has a block the other has too.
    NothingInCommon,
    /// Every block both have agrees, up to `upto`.
    Agree { upto: u64, answer: Answer },
    /// The first height where they differ, both answers there, and the last agreeing height
    /// with its answer (none when even the first block differs).
    Diverged {
        at: u64,
        answers: (Answer, Answer),
        last_agreeing: Option<(u64, Answer)>,
    },
}

/// `2 * ceil(log2 n) + 4`: the most requests per server a comparison of `n` blocks may take.
pub fn request_bound(n: u64) -> u64 {
    let log = if n <= 1 {
        0
    } else {
        u64::from(64 - (n - 1).leading_zeros())
    };
    2 * log + 4
}

/// Compares two nodes whose heads are `ha` and `hb`.
fn search(a: &mut dyn Node, b: &mut dyn Node, ha: &Head, hb: &Head) -> Result<Outcome, SideError> {
    if (&ha.app, &ha.network, ha.first_block, ha.scheme)
        != (&hb.app, &hb.network, hb.first_block, hb.scheme)
    {
        return Ok(Outcome::DifferentApps);
    }
    let (Some(ta), Some(tb)) = (ha.tip, hb.tip) else {
        return Ok(Outcome::NothingInCommon);
    };
    let scheme = ha.scheme;
    let first = ha.first_block;
    let mut hi = ta.min(tb);
    let mut both = |h: u64| -> Result<(Answer, Answer), SideError> {
        Ok((a.block(h, scheme)?, b.block(h, scheme)?))
    };
    let mut hi_answers = both(hi)?;
    if hi_answers.0.consensus_hash == hi_answers.1.consensus_hash {
        return Ok(Outcome::Agree {
            upto: hi,
            answer: hi_answers.0,
        });
    }
    if hi == first {
        return Ok(Outcome::Diverged {
            at: hi,
            answers: hi_answers,
            last_agreeing: None,
        });
    }
    let (fa, fb) = both(first)?;
    if fa.consensus_hash != fb.consensus_hash {
        return Ok(Outcome::Diverged {
            at: first,
            answers: (fa, fb),
            last_agreeing: None,
        });
    }
    // Invariant: they agree at `lo` and differ at `hi`.
    let (mut lo, mut lo_answer) = (first, fa);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let (ma, mb) = both(mid)?;
        if ma.consensus_hash == mb.consensus_hash {
            (lo, lo_answer) = (mid, ma);
        } else {
            (hi, hi_answers) = (mid, (ma, mb));
        }
    }
    Ok(Outcome::Diverged {
        at: hi,
        answers: hi_answers,
        last_agreeing: Some((lo, lo_answer)),
    })
}

/// Runs `compare`.
pub fn run(args: CompareArgs, json: bool) -> ExitCode {
    match compare(&args, json) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!(
                "error: {}",
                shown_long(&crate::exit::one_line(&anyhow::Error::new(e)))
            );
            ExitCode::from(UNANSWERED)
        }
    }
}

fn shown_long(text: &str) -> String {
    vc_light::printable_text(text, 1_000)
}

fn compare(args: &CompareArgs, json: bool) -> Result<u8, SideError> {
    let sides = args.servers.len() + args.dbs.len();
    if sides != 2 {
        return Err(SideError::Malformed {
            node: "the command line".into(),
            detail: format!(
                "compare takes two nodes (--server URL or --db FILE, twice or one of each), not {sides}"
            ),
        });
    }
    let timeout = args.timeout.max(Duration::from_millis(1));
    let deadline = Instant::now() + timeout.min(vc_light::MAX_TIMEOUT);
    let mut nodes: Vec<Box<dyn Node>> = Vec::new();
    for url in &args.servers {
        nodes.push(Box::new(Server::new(url, deadline, timeout)?));
    }
    for db in &args.dbs {
        nodes.push(Box::new(Database::open(db)?));
    }
    let [mut a, mut b]: [Box<dyn Node>; 2] =
        nodes.try_into().map_err(|_| SideError::Malformed {
            node: "the command line".into(),
            detail: "compare takes two nodes".into(),
        })?;
    let ha = a.head()?;
    let hb = b.head()?;
    let outcome = search(a.as_mut(), b.as_mut(), &ha, &hb)?;
    report(&outcome, (a.as_ref(), &ha), (b.as_ref(), &hb), json);
    Ok(match outcome {
        Outcome::Agree { .. } | Outcome::NothingInCommon => AGREE,
        Outcome::Diverged { .. } | Outcome::DifferentApps => DIVERGED,
    })
}

fn tip_text(t: Option<u64>) -> String {
    t.map_or_else(|| "none".into(), |t| t.to_string())
}

fn report(outcome: &Outcome, a: (&dyn Node, &Head), b: (&dyn Node, &Head), json: bool) {
    let common = match (a.1.tip, b.1.tip) {
        (Some(x), Some(y)) if a.1.first_block == b.1.first_block => {
            (x.min(y) + 1).saturating_sub(a.1.first_block)
        }
        _ => 0,
    };
    let bound = request_bound(common);
    let side = |(n, h): (&dyn Node, &Head)| {
        json!({
            "node": n.label(),
            "app": h.app,
            "version": h.version,
            "network": h.network,
            "scheme": h.scheme.name(),
            "first_block": h.first_block,
            "tip": h.tip,
            "requests": n.requests(),
        })
    };
    if json {
        let mut out = json!({
            "nodes": [side(a), side(b)],
            "blocks_compared": common,
            "request_bound": bound,
        });
        let fields = match outcome {
            Outcome::DifferentApps => json!({"result": "different_apps"}),
            Outcome::NothingInCommon => json!({"result": "nothing_in_common"}),
            Outcome::Agree { upto, answer } => json!({
                "result": "agree",
                "agree_up_to": upto,
                "answer": answer.json(),
            }),
            Outcome::Diverged {
                at,
                answers,
                last_agreeing,
            } => json!({
                "result": "diverged",
                "first_divergence": at,
                "answers": [answers.0.json(), answers.1.json()],
                "same_bitcoin_block": answers.0.block_hash == answers.1.block_hash,
                "last_agreeing": last_agreeing.map(|(h, _)| h),
                "last_agreeing_answer": last_agreeing.map(|(_, a)| a.json()),
            }),
        };
        if let (Value::Object(out), Value::Object(fields)) = (&mut out, fields) {
            out.extend(fields);
        }
        outln!("{out}");
        return;
    }
    let (na, nb) = (a.0.label(), b.0.label());
    match outcome {
        Outcome::DifferentApps => {
            outln!("not the same application instance: their consensus hashes cannot agree");
            for (n, h) in [a, b] {
                outln!(
                    "  {}: {} {} on {}, {} hashes, first block {}",
                    n.label(),
                    h.app,
                    h.version,
                    h.network,
                    h.scheme.name(),
                    h.first_block
                );
            }
        }
        Outcome::NothingInCommon => outln!(
            "nothing to compare: tips {na} {}, {nb} {}",
            tip_text(a.1.tip),
            tip_text(b.1.tip)
        ),
        Outcome::Agree { upto, answer } => {
            outln!(
                "agree on every block up to {upto} (consensus hash {})",
                answer.consensus_hash
            );
            if a.1.tip != b.1.tip {
                outln!(
                    "tips differ: {na} at {}, {nb} at {}; the blocks above {upto} were not compared",
                    tip_text(a.1.tip),
                    tip_text(b.1.tip)
                );
            }
        }
        Outcome::Diverged {
            at,
            answers,
            last_agreeing,
        } => {
            outln!("diverged at height {at}");
            for (n, ans) in [(na, &answers.0), (nb, &answers.1)] {
                outln!(
                    "  {n}: block {}, consensus hash {}",
                    ans.block_hash,
                    ans.consensus_hash
                );
            }
            if answers.0.block_hash == answers.1.block_hash {
                outln!(
                    "  the same Bitcoin block: the nodes disagree on its consequences (other rules, or a consensus bug)"
                );
            } else {
                outln!(
                    "  different Bitcoin blocks: the nodes follow different branches of the chain"
                );
            }
            match last_agreeing {
                Some((h, ans)) => outln!(
                    "last agreeing height {h} (consensus hash {})",
                    ans.consensus_hash
                ),
                None => outln!("no agreeing height: they differ from the first block on"),
            }
        }
    }
    if a.1.version != b.1.version {
        outln!(
            "note: application versions differ ({} {}, {} {})",
            na,
            a.1.version,
            nb,
            b.1.version
        );
    }
    outln!(
        "requests: {na} {}, {nb} {} (at most {bound} for {common} common blocks)",
        a.0.requests(),
        b.0.requests()
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A node answering from a list of consensus hashes (by offset from the first block).
    struct Listed {
        chs: Vec<ConsensusHash>,
        first: u64,
        requests: u64,
    }

    impl Node for Listed {
        fn label(&self) -> &str {
            "listed"
        }
        fn head(&mut self) -> Result<Head, SideError> {
            self.requests += 1;
            Ok(Head {
                app: "t".into(),
                version: "1".into(),
                scheme: Scheme::V2,
                first_block: self.first,
                network: "regtest".into(),
                tip: (self.first + self.chs.len() as u64).checked_sub(1),
            })
        }
        fn block(&mut self, height: u64, _: Scheme) -> Result<Answer, SideError> {
            self.requests += 1;
            Ok(Answer {
                block_hash: Hash256::ZERO,
                consensus_hash: self.chs[usize::try_from(height - self.first).unwrap()],
            })
        }
        fn requests(&self) -> u64 {
            self.requests
        }
    }

    fn ch(n: u64, branch: u8) -> ConsensusHash {
        let mut b = [branch; 32];
        b[..8].copy_from_slice(&n.to_le_bytes());
        ConsensusHash::from_slice(Scheme::V2, &b).unwrap()
    }

    #[test]
    fn every_planted_divergence_is_found_within_the_bound() {
        for n in [1u64, 2, 3, 7, 100, 1000, 4097] {
            for fork in (0..n)
                .step_by(usize::try_from((n / 7).max(1)).unwrap())
                .chain([n - 1])
            {
                let mut a = Listed {
                    chs: (0..n).map(|h| ch(h, 0)).collect(),
                    first: 10,
                    requests: 0,
                };
                let mut b = Listed {
                    chs: (0..n).map(|h| ch(h, u8::from(h >= fork))).collect(),
                    first: 10,
                    requests: 0,
                };
                let (ha, hb) = (a.head().unwrap(), b.head().unwrap());
                let out = search(&mut a, &mut b, &ha, &hb).unwrap();
                match out {
                    Outcome::Diverged {
                        at, last_agreeing, ..
                    } => {
                        assert_eq!(at, 10 + fork, "n {n}");
                        assert_eq!(last_agreeing.map(|(h, _)| h), (fork > 0).then(|| 9 + fork));
                    }
                    other => panic!("n {n} fork {fork}: {other:?}"),
                }
                // One tip, the common tip, the first block, one per halving.
                let log = (request_bound(n) - 4) / 2;
                assert!(a.requests <= log + 3, "n {n}: {}", a.requests);
                assert!(a.requests <= request_bound(n), "n {n}: {}", a.requests);
                assert_eq!(a.requests, b.requests);
            }
        }
    }

    #[test]
    fn the_bound_is_two_log_n_plus_four() {
        assert_eq!(request_bound(0), 4);
        assert_eq!(request_bound(1), 4);
        assert_eq!(request_bound(2), 6);
        assert_eq!(request_bound(1024), 24);
        assert_eq!(request_bound(1025), 26);
    }
}
