//! `--source` URLs: which block source a command reads.
//!
//! - `core://USER:PASS@HOST:PORT`: Bitcoin Core, REST for bulk data when `-rest` is on;
//! - `core://HOST:PORT?cookie=PATH`: the same with cookie authentication;
//! - `core+rpc://...`: Core over JSON-RPC only (no REST);
//! - `blk:/path/to/blocks`: Core's block files, read directly;
//! - `electrum://HOST:PORT` (plain TCP) or `electrum+tls://HOST:PORT` (TLS): an Electrum
//!   server as a light-node source (the application must declare marker scripts: for names,
//!   `--registry`).

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
    },
}

impl SourceSpec {
    /// Parses a `--source` value.
    pub fn parse(s: &str) -> Result<SourceSpec> {
        if let Some(path) = s.strip_prefix("blk:") {
            return Ok(SourceSpec::Blk(PathBuf::from(path)));
        }
        for (prefix, scheme) in [("electrum://", "tcp"), ("electrum+tls://", "ssl")] {
            if let Some(hostport) = s.strip_prefix(prefix) {
                match hostport.rsplit_once(':') {
                    Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                        return Ok(SourceSpec::Electrum {
                            url: format!("{scheme}://{hostport}"),
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
            SourceSpec::Electrum { url } => Source::watched(
                ElectrumSource::connect(ElectrumConfig::new(url.clone(), network))
                    .with_context(|| format!("connecting to {url}"))?,
            ),
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
                url: "tcp://127.0.0.1:50001".into()
            }
        );
        assert_eq!(
            SourceSpec::parse("electrum+tls://electrum.example:50002").unwrap(),
            SourceSpec::Electrum {
                url: "ssl://electrum.example:50002".into()
            }
        );
        for bad in [
            "electrum://x",
            "electrum://:1",
            "electrum+tls://x:port",
            "tcp://x:1",
            "core://127.0.0.1:1",
            "core://u@h:1",
            "core://u:p@",
        ] {
            assert!(SourceSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
