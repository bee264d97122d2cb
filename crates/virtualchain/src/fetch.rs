//! `virtualchain snapshot fetch`: a verified bootstrap from another node's published snapshot.
//!
//! The download goes to `DB.snapshot-HEIGHT-HASH.partial` beside the database, a buffer at a
//! time (bounded memory), and resumes with an HTTP range, both after a cut connection (up to
//! `--retries` times in one run) and in a later run after a kill; `If-Range` with the server's
//! `ETag` makes sure the bytes resumed are of the same file. The finished file is imported
//! with [`vc_store::snapshot::import`]: every block goes through the writer, each consensus hash
//! is recomputed from the records and the one at the trusted height must be the trusted one.
//! A snapshot that does not verify is deleted and leaves no database behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use bitcoin::Network;
use serde_json::Value;
use vc_light::Trusted;

use crate::Globals;
use crate::exit::InputError;
use crate::registry;

/// `virtualchain snapshot fetch`.
#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// The server (`virtualchain serve --snapshot-dir`): http://host:port or
    /// https://host\[:port\].
    url: String,
    /// HEIGHT:CONSENSUS_HASH the snapshot must reproduce, from a node you trust (`virtualchain
    /// status` there). The snapshot fetched is the server's at this height.
    #[arg(long, value_parser = parse_trusted)]
    trusted: Trusted,
    /// The database to create (it must not exist; default: DATA_DIR/NETWORK/APP.redb).
    #[arg(long)]
    db: Option<PathBuf>,
    /// The application (default: names); the snapshot must have been made for it, with the
    /// same parameters `index` would create a database with.
    #[arg(long)]
    app: Option<String>,
    /// The application's first block (default: the application's own for mainnet, 1
    /// elsewhere).
    #[arg(long)]
    first_block: Option<u64>,
    /// The names app's marker deployment (`default`, or the script in hex), as for `index`.
    #[arg(long)]
    registry: Option<String>,
    /// The consensus-hash scheme, as for `index` (default: the application's). A v3 snapshot's
    /// state is proven by the trusted hash as well as its operations.
    #[arg(long, value_name = "SCHEME")]
    scheme: Option<vc_chash::Scheme>,
    /// How long connecting, and each read, may take before the transfer counts as cut: 30s,
    /// 500ms (a bare number is seconds).
    #[arg(long, default_value = "30s", value_parser = crate::units::parse_duration)]
    timeout: Duration,
    /// How many times a cut transfer is resumed in this run before giving up (the partial
    /// file stays, and the next run resumes it).
    #[arg(long, default_value_t = 5)]
    retries: u32,
}

fn parse_trusted(s: &str) -> Result<Trusted, String> {
    s.parse::<Trusted>()
        .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
}

/// The bytes copied at a time.
const BUFFER: usize = 256 * 1024;

/// The largest listing read (`/v1/snapshots`).
const MAX_LISTING: u64 = 4 << 20;

/// Text from a server, safe to print.
fn shown(text: &str) -> String {
    vc_light::printable_text(text, 200)
}

/// Why one attempt at the transfer failed.
enum Attempt {
    /// Worth resuming: the connection failed or was cut, or the server is busy.
    Cut(anyhow::Error),
    /// Not worth retrying.
    Fatal(anyhow::Error),
}

fn unavailable(what: String) -> anyhow::Error {
    InputError::Unavailable(what).into()
}

fn invalid(detail: String) -> anyhow::Error {
    InputError::Invalid {
        what: "the snapshot",
        detail,
    }
    .into()
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_per_read(Some(timeout))
        .max_redirects(0)
        .build()
        .into()
}

/// `GET url`: a JSON answer of at most [`MAX_LISTING`] bytes with status 200.
fn get_json(agent: &ureq::Agent, url: &str) -> Result<Value> {
    let mut resp = agent
        .get(url)
        .call()
        .map_err(|e| unavailable(format!("{url}: {e}")))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_LISTING)
        .read_to_vec()
        .map_err(|e| unavailable(format!("{url}: {e}")))?;
    if status != 200 {
        return Err(unavailable(format!(
            "{url}: HTTP {status}: {}",
            shown(&String::from_utf8_lossy(&body))
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| unavailable(format!("{url}: the answer is not JSON: {e}")))
}

/// The server's listed snapshot at `height`: its consensus hash and size.
fn listed(agent: &ureq::Agent, base: &str, height: u64) -> Result<(String, Option<u64>)> {
    let url = format!("{base}/v1/snapshots");
    let v = get_json(agent, &url)?;
    let list = v
        .get("snapshots")
        .and_then(Value::as_array)
        .ok_or_else(|| unavailable(format!("{url}: no snapshots list")))?;
    let heights: Vec<u64> = list
        .iter()
        .filter_map(|s| s.get("height").and_then(Value::as_u64))
        .collect();
    let found = list
        .iter()
        .find(|s| s.get("height").and_then(Value::as_u64) == Some(height));
    match found {
        Some(s) => Ok((
            s.get("consensus_hash")
                .and_then(Value::as_str)
                .map(shown)
                .unwrap_or_default(),
            s.get("bytes").and_then(Value::as_u64),
        )),
        None => Err(unavailable(format!(
            "{base} publishes no snapshot at height {height} (it has {})",
            if heights.is_empty() {
                "none".to_owned()
            } else {
                format!("heights {heights:?}")
            }
        ))),
    }
}

/// Refuses a server whose application instance (`/v1/tip`: name, version, first block,
/// network) is not `want`'s, before anything is downloaded. The import checks the snapshot
/// itself, parameters included; this only spares a download that could not be imported.
fn same_application(agent: &ureq::Agent, base: &str, want: &vc_store::StoreConfig) -> Result<()> {
    let v = get_json(agent, &format!("{base}/v1/tip"))?;
    let text = |k: &str| {
        v.pointer(&format!("/app/{k}"))
            .and_then(Value::as_str)
            .map(shown)
    };
    let theirs = (
        text("name"),
        text("version"),
        v.pointer("/app/first_block").and_then(Value::as_u64),
        text("network"),
    );
    let ours = (
        Some(want.app_name.clone()),
        Some(want.app_version.clone()),
        Some(want.first_block),
        Some(want.network.clone()),
    );
    if theirs != ours {
        let show =
            |(n, v, f, net): &(Option<String>, Option<String>, Option<u64>, Option<String>)| {
                format!(
                    "{} {} on {}, first block {}",
                    n.as_deref().unwrap_or("?"),
                    v.as_deref().unwrap_or("?"),
                    net.as_deref().unwrap_or("?"),
                    f.map_or_else(|| "?".into(), |f| f.to_string())
                )
            };
        return Err(InputError::Config(format!(
            "{base} serves {}, not {} (set --app, --network, --first-block as for `index`); nothing was downloaded",
            show(&theirs),
            show(&ours)
        ))
        .into());
    }
    Ok(())
}

/// One request for the rest of the file: `Ok(())` once `partial` is whole.
fn attempt(
    agent: &ureq::Agent,
    url: &str,
    partial: &Path,
    etag_file: &Path,
) -> Result<(), Attempt> {
    let cut = |e: anyhow::Error| Attempt::Cut(e);
    let io = |what: &str, e: std::io::Error| {
        Attempt::Fatal(anyhow::Error::new(e).context(format!("{what} {}", partial.display())))
    };
    let have = std::fs::metadata(partial).map_or(0, |m| m.len());
    let etag = std::fs::read_to_string(etag_file).ok();
    let mut req = agent.get(url);
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
        if let Some(tag) = &etag {
            req = req.header("If-Range", tag.trim());
        }
    }
    let resp = req
        .call()
        .map_err(|e| cut(unavailable(format!("{url}: {e}"))))?;
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (start, total) = match status {
        200 => {
            let len = header("content-length")
                .and_then(|l| l.parse::<u64>().ok())
                .ok_or_else(|| Attempt::Fatal(unavailable(format!("{url}: no Content-Length"))))?;
            (0, len)
        }
        206 => {
            let range = header("content-range").unwrap_or_default();
            let parsed = range
                .strip_prefix("bytes ")
                .and_then(|r| r.split_once('/'))
                .and_then(|(span, total)| {
                    let (a, b) = span.split_once('-')?;
                    Some((
                        a.parse::<u64>().ok()?,
                        b.parse::<u64>().ok()?,
                        total.parse::<u64>().ok()?,
                    ))
                });
            match parsed {
                Some((a, b, total)) if a == have && b + 1 == total => (a, total),
                _ => {
                    // Not the range asked for: start again from the first byte.
                    let _ = std::fs::remove_file(partial);
                    return Err(cut(unavailable(format!(
                        "{url}: asked for bytes {have}-, got range {:?}",
                        shown(&range)
                    ))));
                }
            }
        }
        416 => {
            // The partial file is not a prefix of the server's file: start again.
            let _ = std::fs::remove_file(partial);
            return Err(cut(unavailable(format!(
                "{url}: the server's file is shorter than the {have} bytes already fetched"
            ))));
        }
        503 => return Err(cut(unavailable(format!("{url}: HTTP 503 (busy)")))),
        other => {
            return Err(Attempt::Fatal(unavailable(format!("{url}: HTTP {other}"))));
        }
    };
    let mut out = if start == 0 {
        let f = File::create(partial).map_err(|e| io("creating", e))?;
        if let Some(tag) = header("etag") {
            std::fs::write(etag_file, tag).map_err(|e| io("writing the ETag of", e))?;
        } else {
            let _ = std::fs::remove_file(etag_file);
        }
        f
    } else {
        OpenOptions::new()
            .append(true)
            .open(partial)
            .map_err(|e| io("opening", e))?
    };
    let mut body = resp.into_body().into_reader().take(total - start);
    let mut buf = vec![0u8; BUFFER];
    let mut at = start;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = out.sync_data();
                return Err(cut(unavailable(format!(
                    "{url}: the transfer was cut at byte {at} of {total}: {e}"
                ))));
            }
        };
        out.write_all(&buf[..n]).map_err(|e| io("writing", e))?;
        at += n as u64;
    }
    out.sync_all().map_err(|e| io("syncing", e))?;
    if at != total {
        return Err(cut(unavailable(format!(
            "{url}: the transfer ended at byte {at} of {total}"
        ))));
    }
    Ok(())
}

/// Downloads `url` into `partial`, resuming what is there, `retries` times at most.
fn download(
    agent: &ureq::Agent,
    url: &str,
    partial: &Path,
    etag_file: &Path,
    retries: u32,
) -> Result<()> {
    let mut tries = 0u32;
    loop {
        match attempt(agent, url, partial, etag_file) {
            Ok(()) => return Ok(()),
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Cut(e)) if tries >= retries => {
                return Err(e.context(format!(
                    "giving up after {tries} resumptions; run the command again to resume from {}",
                    partial.display()
                )));
            }
            Err(Attempt::Cut(e)) => {
                tries += 1;
                let wait = Duration::from_millis(200 << tries.min(5));
                tracing::warn!(
                    error = %crate::exit::one_line(&e),
                    "snapshot transfer cut; resuming in {wait:?} (attempt {tries} of {retries})"
                );
                std::thread::sleep(wait);
            }
        }
    }
}

/// `path` with `suffix` appended to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Runs `snapshot fetch`.
pub fn fetch(args: FetchArgs, globals: &Globals, json: bool) -> Result<ExitCode> {
    let app = registry::by_cli_name(args.app.as_deref().unwrap_or("names"))?;
    let db = globals.db(args.db.clone(), app.cli_name())?;
    if std::fs::metadata(&db).is_ok_and(|m| m.len() > 0) {
        return Err(InputError::Config(format!(
            "{} exists; snapshot fetch creates a new database (move it aside, or `index` it)",
            db.display()
        ))
        .into());
    }
    let options = registry::CreateOptions {
        network: globals.network.unwrap_or(Network::Bitcoin),
        first_block: args.first_block,
        registry: args.registry.clone(),
        scheme: args.scheme,
        migration: None,
        module: args
            .app
            .as_deref()
            .filter(|a| registry::is_module_path(a))
            .map(PathBuf::from),
    };
    let config = app.new_store_config(&options)?;
    let base = args.url.trim_end_matches('/').to_owned();
    let (height, trusted_ch) = (args.trusted.height, args.trusted.consensus_hash);
    let agent = agent(args.timeout.max(Duration::from_millis(1)));

    same_application(&agent, &base, &config)?;
    let (claimed, bytes) = listed(&agent, &base, height)?;
    if claimed != trusted_ch.to_string() {
        return Err(invalid(format!(
            "{base} lists its snapshot at height {height} with consensus hash {claimed}, not the trusted {trusted_ch}; nothing was downloaded"
        )));
    }
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let partial = beside(&db, &format!(".snapshot-{height}-{trusted_ch}.partial"));
    let etag_file = beside(&partial, ".etag");
    let url = format!("{base}/v1/snapshots/{height}");
    tracing::info!(%url, bytes = ?bytes, partial = %partial.display(), "fetching snapshot");
    download(&agent, &url, &partial, &etag_file, args.retries)?;
    let got = std::fs::metadata(&partial).map_or(0, |m| m.len());
    if bytes.is_some_and(|b| b != got) {
        tracing::warn!(
            listed = ?bytes,
            got,
            "the snapshot's size differs from the server's listing; importing it all the same (the import verifies it)"
        );
    }

    let forget = || {
        let _ = std::fs::remove_file(&partial);
        let _ = std::fs::remove_file(&etag_file);
    };
    let summary = match vc_store::snapshot::import(&partial, &db, config, (height, trusted_ch)) {
        Ok((store, summary)) => {
            drop(store);
            summary
        }
        Err(e) => {
            forget();
            return Err(anyhow::Error::new(e).context(format!(
                "the snapshot from {url} was refused and deleted; no database was created"
            )));
        }
    };
    if summary.tip != Some(height) {
        let _ = std::fs::remove_file(&db);
        forget();
        return Err(invalid(format!(
            "it ends at height {:?}, not at the trusted height {height}; no database was created",
            summary.tip
        )));
    }
    forget();
    let text = format!(
        "fetched and verified {} blocks up to {height} (consensus hash {trusted_ch}) into {}; `virtualchain index --db {}` continues from {}",
        summary.blocks,
        db.display(),
        db.display(),
        height + 1
    );
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "db": db.display().to_string(),
                "height": height,
                "consensus_hash": trusted_ch.to_string(),
                "blocks": summary.blocks,
                "state_entries": summary.state_entries,
                "bytes": summary.bytes,
            })
        );
    } else {
        outln!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
