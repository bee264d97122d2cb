//! CORS in a real browser: headless Chromium loads a page from one origin, and the page's
//! script reads `virtualchain serve` on another: the tip, and a proof fetched with a header
//! that needs a preflight. The proof the browser got verifies against the tip it read. Against
//! a server started with `--no-cors` the same page's reads fail, as they must.
//!
//! Chromium comes from `CHROMIUM_EXE` or `chromium` on the `PATH` (Debian's package; `cargo
//! xtask ci` installs it). Without it the test skips loudly, unless `VC_REQUIRE_CHROMIUM` is
//! set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use vc_chash::{ConsensusHash, Scheme, hex};
use vc_testnode::synthetic;

#[path = "support/serve.rs"]
mod serve_support;

const FIRST: u64 = 100;

fn chromium() -> Option<PathBuf> {
    if let Some(exe) = std::env::var_os("CHROMIUM_EXE") {
        return Some(PathBuf::from(exe));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// A listener for the page's origin, and the origin.
fn page_origin() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    (listener, origin)
}

/// Serves `page` at every path of `listener`.
fn serve_page(listener: TcpListener, page: String) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
}

/// Starts `serve` with `args` (`{origin}` replaced by the page's origin), serves the page from
/// that origin, and returns what the page's script wrote, as Chromium's DOM shows it.
fn load(exe: &PathBuf, db: &std::path::Path, args: &[&str]) -> String {
    let (listener, origin) = page_origin();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{origin}", &origin))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut server, api) = serve_support::serve_with(db, &args);
    serve_page(listener, page(&api));
    let dom = dump_dom(exe, &format!("{origin}/page.html"));
    server.kill().unwrap();
    let _ = server.wait();
    // What the script wrote: the text of `#out`.
    let open = "<pre id=\"out\">";
    let at = dom.find(open).expect("the page's output element") + open.len();
    let end = dom[at..]
        .find("</pre>")
        .expect("the end of the output element");
    dom[at..at + end].to_owned()
}

/// The page: reads the tip, then a proof of `FIRST` against it (with a custom header, so the
/// browser sends a preflight first), and writes what it got into `#out`.
fn page(api: &str) -> String {
    format!(
        r#"<!doctype html><html><body><pre id="out">pending</pre><script>
const out = document.getElementById("out");
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
(async () => {{
  try {{
    const tip = await (await fetch("{api}/v1/tip")).json();
    const n = tip.tip.height;
    const r = await fetch("{api}/v1/proofs/{FIRST}?trusted=" + n, {{ headers: {{ "X-Requested-With": "vc-test" }} }});
    const proof = new Uint8Array(await r.arrayBuffer());
    out.textContent = "OK tip=" + n + " ch=" + tip.tip.consensus_hash + " status=" + r.status + " proof=" + hex(proof) + " END";
  }} catch (e) {{
    out.textContent = "FAILED " + e;
  }}
}})();
</script></body></html>"#
    )
}

/// Loads `url` in headless Chromium and returns the DOM after the page's fetches.
fn dump_dom(exe: &PathBuf, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(exe)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn field<'a>(dom: &'a str, name: &str) -> &'a str {
    let at = dom
        .find(&format!(" {name}="))
        .unwrap_or_else(|| panic!("{name} in {dom}"));
    dom[at + name.len() + 2..]
        .split_whitespace()
        .next()
        .unwrap()
}

#[test]
fn a_page_from_another_origin_reads_the_tip_and_a_proof_through_cors() {
    let Some(exe) = chromium() else {
        assert!(
            std::env::var_os("VC_REQUIRE_CHROMIUM").is_none(),
            "VC_REQUIRE_CHROMIUM is set but chromium is not installed (apt-get install chromium, \
             or set CHROMIUM_EXE)"
        );
        eprintln!(
            "SKIPPED: chromium not found (apt-get install chromium, or set CHROMIUM_EXE); the \
             CORS browser test did not run"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.redb");
    let (store, _) = synthetic::create(&db, Scheme::V2, FIRST, 40).unwrap();
    drop(store);

    // Any origin (the default), and the page's origin listed: the page reads the tip and a
    // proof that verifies against it.
    for args in [&[][..], &["--cors-origin", "{origin}"][..]] {
        let dom = load(&exe, &db, args);
        assert!(
            dom.starts_with("OK tip=") && dom.ends_with(" END"),
            "{args:?}: {dom}"
        );
        let n = field(&dom, "tip").parse().unwrap();
        let ch: ConsensusHash = field(&dom, "ch").parse().unwrap();
        let tip = vc_store::ReadOnlyStore::open(&db)
            .unwrap()
            .tip()
            .unwrap()
            .unwrap();
        assert_eq!((n, ch), (tip.height, tip.consensus_hash));
        assert_eq!(field(&dom, "status"), "200");
        let proof = hex::decode(field(&dom, "proof")).unwrap();
        let block = vc_chash::proof::verify(&proof, FIRST, n, &ch, FIRST).unwrap();
        assert_eq!(block.height, FIRST);
    }
    // Another origin listed, or no CORS at all: the browser refuses the page the answers.
    for args in [
        &["--cors-origin", "http://127.0.0.1:1"][..],
        &["--no-cors"][..],
    ] {
        let dom = load(&exe, &db, args);
        assert!(dom.starts_with("FAILED"), "{args:?}: {dom}");
    }
}
