//! `--source` URLs: which block source a command reads.
//!
//! - `core://USER:PASS@HOST:PORT`: Bitcoin Core, REST for bulk data when `-rest` is on;
//! - `core://HOST:PORT?cookie=PATH`: the same with cookie authentication;
//! - `core+rpc://...`: Core over JSON-RPC only (no REST);
//! - `blk:/path/to/blocks`: Core's block files, read directly;
//! - `electrum://HOST:PORT` (plain TCP) or `electrum+tls://HOST:PORT` (TLS): an Electrum
//!   server as a light-node source (the application must declare marker scripts: for names,
//!   `--registry`). Options in the query: `?ca=PATH` (TLS: trust only the CA certificates in
//!   that PEM file), `?proxy=socks5://HOST:PORT` (connect through a SOCKS5 proxy such as Tor's;
//!   the proxy resolves the server's name, so `.onion` hosts work); join both with `&`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bitcoin::Network;
use vc_source::Source;
use vc_source::blk::{BlkConfig, BlkSource};
use vc_source::core::{CoreAuth, CoreConfig, CoreSource, RestMode};
use vc_source::electrum::{ElectrumConfig, ElectrumSource};

/// A parsed `--source`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// Bitcoin Core.
    Core {
        /// `http://host:port`.
        url: String,
        /// Credentials.
        auth: CoreAuth,
        /// Whether REST may be used.
        rest: bool,
    },
    /// Block files.
    Blk(PathBuf),
    /// An Electrum server.
    Electrum {
        /// `tcp://host:port` or `ssl://host:port`, as the Electrum client takes it.
        url: String,
        /// `?ca=PATH`: the CA certificates to trust for TLS instead of the web PKI's.
        ca: Option<PathBuf>,
        /// `?proxy=socks5://HOST:PORT`: a SOCKS5 proxy.
        proxy: Option<String>,
    },
}

impl SourceSpec {
    /// Parses a `--source` value.
    pub fn parse(s: &str) -> Result<SourceSpec> {
        if let Some(path) = s.strip_prefix("blk:") {
            return Ok(SourceSpec::Blk(PathBuf::from(path)));
        }
        for (prefix, scheme) in [("electrum://", "tcp"), ("electrum+tls://", "ssl")] {
            if let Some(after) = s.strip_prefix(prefix) {
                let (hostport, query) = after.split_once('?').unwrap_or((after, ""));
                let (mut ca, mut proxy) = (None, None);
                for kv in query.split('&').filter(|kv| !kv.is_empty()) {
                    match kv.split_once('=') {
                        Some(("ca", path)) if scheme == "ssl" && !path.is_empty() => {
                            ca = Some(PathBuf::from(path));
                        }
                        Some(("proxy", p)) if !p.is_empty() => {
                            let hostport = p
                                .strip_prefix("socks5://")
                                .or_else(|| p.strip_prefix("socks5h://"))
                                .with_context(|| {
                                    format!("source {s:?}: the proxy is socks5://HOST:PORT")
                                })?;
                            proxy = Some(hostport.to_owned());
                        }
                        _ => bail!(
                            "source {s:?}: unknown option {kv:?} (electrum+tls:// takes ca=PATH, both take proxy=socks5://HOST:PORT)"
                        ),
                    }
                }
                match hostport.rsplit_once(':') {
                    Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                        return Ok(SourceSpec::Electrum {
                            url: format!("{scheme}://{hostport}"),
                            ca,
                            proxy,
                        });
                    }
                    _ => bail!("source {s:?} needs HOST:PORT"),
                }
            }
        }
        let (rest, after) = if let Some(a) = s.strip_prefix("core+rpc://") {
            (false, a)
        } else if let Some(a) = s.strip_prefix("core://") {
            (true, a)
        } else {
            bail!(
                "unknown source {s:?}: use core://USER:PASS@HOST:PORT, core://HOST:PORT?cookie=PATH, core+rpc://..., blk:/path/to/blocks, electrum://HOST:PORT or electrum+tls://HOST:PORT"
            );
        };
        let (authority, query) = after.split_once('?').unwrap_or((after, ""));
        let (creds, hostport) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        if hostport.is_empty() || !hostport.contains(':') {
            bail!("source {s:?} needs HOST:PORT");
        }
        let cookie = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("cookie="))
            .map(PathBuf::from);
        let auth = match (creds, cookie) {
            (Some(c), None) => {
                let (user, pass) = c
                    .split_once(':')
                    .with_context(|| format!("source {s:?}: credentials are USER:PASS"))?;
                CoreAuth::UserPass(user.to_owned(), pass.to_owned())
            }
            (None, Some(path)) => CoreAuth::Cookie(path),
            (Some(_), Some(_)) => bail!("source {s:?}: give USER:PASS or a cookie, not both"),
            (None, None) => bail!("source {s:?}: needs USER:PASS@ or ?cookie=PATH"),
        };
        Ok(SourceSpec::Core {
            url: format!("http://{hostport}"),
            auth,
            rest,
        })
    }

    /// Connects.
    pub fn connect(&self, network: Network) -> Result<Source> {
        Ok(match self {
            SourceSpec::Core { .. } => Source::blocks(self.core(network)?),
            SourceSpec::Blk(dir) => Source::blocks(
                BlkSource::open(BlkConfig::new(dir, network))
                    .with_context(|| format!("opening block files in {}", dir.display()))?,
            ),
            SourceSpec::Electrum { url, ca, proxy } => {
                let mut config = ElectrumConfig::new(url.clone(), network);
                if let Some(ca) = ca {
                    config = config.with_ca(ca);
                }
                if let Some(proxy) = proxy {
                    config = config.with_proxy(proxy);
                }
                Source::watched(
                    ElectrumSource::connect(config)
                        .with_context(|| format!("connecting to {url}"))?,
                )
            }
        })
    }

    /// Connects to Core (for commands that need Core's RPC, like finding coins).
    pub fn core(&self, network: Network) -> Result<CoreSource> {
        let SourceSpec::Core { url, auth, rest } = self else {
            bail!("this command needs a core:// source");
        };
        let mut config = CoreConfig::new(url.clone(), auth.clone(), network);
        if !rest {
            config.rest = RestMode::Off;
        }
        CoreSource::connect(config).with_context(|| format!("connecting to {url}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            SourceSpec::parse("core://u:p@127.0.0.1:18443").unwrap(),
            SourceSpec::Core {
                url: "http://127.0.0.1:18443".into(),
                auth: CoreAuth::UserPass("u".into(), "p".into()),
                rest: true
            }
        );
        assert_eq!(
            SourceSpec::parse("core+rpc://127.0.0.1:1?cookie=/tmp/c").unwrap(),
            SourceSpec::Core {
                url: "http://127.0.0.1:1".into(),
                auth: CoreAuth::Cookie("/tmp/c".into()),
                rest: false
            }
        );
        assert_eq!(
            SourceSpec::parse("blk:/x/blocks").unwrap(),
            SourceSpec::Blk("/x/blocks".into())
        );
        assert_eq!(
            SourceSpec::parse("electrum://127.0.0.1:50001").unwrap(),
            SourceSpec::Electrum {
                url: "tcp://127.0.0.1:50001".into(),
                ca: None,
                proxy: None,
            }
        );
        assert_eq!(
            SourceSpec::parse("electrum+tls://electrum.example:50002").unwrap(),
            SourceSpec::Electrum {
                url: "ssl://electrum.example:50002".into(),
                ca: None,
                proxy: None,
            }
        );
        assert_eq!(
            SourceSpec::parse(
                "electrum+tls://abc.onion:50002?ca=/etc/ca.pem&proxy=socks5://127.0.0.1:9050"
            )
            .unwrap(),
            SourceSpec::Electrum {
                url: "ssl://abc.onion:50002".into(),
                ca: Some("/etc/ca.pem".into()),
                proxy: Some("127.0.0.1:9050".into()),
            }
        );
        for bad in [
            "electrum://x",
            "electrum://:1",
            "electrum+tls://x:port",
            "electrum://x:1?ca=/a.pem",
            "electrum://x:1?proxy=http://p:1",
            "electrum://x:1?timeout=3",
            "tcp://x:1",
            "core://127.0.0.1:1",
            "core://u@h:1",
            "core://u:p@",
        ] {
            assert!(SourceSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
