//! `--source` URLs: which block source a command reads.
//!
//! - `core://USER:PASS@HOST:PORT`: Bitcoin Core, REST for bulk data when `-rest` is on (USER
//!   and PASS are percent-decoded: `p%40ss` is `p@ss`);
//! - `core://HOST:PORT?cookie=PATH`: the same with cookie authentication;
//! - `core://HOST[:PORT]`: the cookie looked up in the Bitcoin data directory
//!   (`~/.bitcoin/[CHAIN/].cookie` unless one is given), the network's default port when none
//!   is given (mainnet 8332, testnet 18332, testnet4 48332, signet 38332, regtest 18443);
//! - `core+rpc://...`: Core over JSON-RPC only (no REST);
//! - `blk:/path/to/blocks`: Core's block files, read directly;
//! - `electrum://HOST:PORT` (plain TCP) or `electrum+tls://HOST:PORT` (TLS): an Electrum
//!   server as a light-node source (the application must declare marker scripts: for names,
//!   `--registry`). Options in the query: `?ca=PATH` (TLS: trust only the CA certificates in
//!   that PEM file), `?proxy=socks5://HOST:PORT` (connect through a SOCKS5 proxy such as Tor's;
//!   the proxy resolves the server's name, so `.onion` hosts work); join both with `&`.
//!
//! Without `--source`, Core is found the way ord and electrs find it: [`SourceSpec::from_flags`]
//! takes `--bitcoin-data-dir`, `--bitcoin-rpc-url`, `--bitcoin-rpc-user` and
//! `--bitcoin-rpc-pass`. A password is never shown: not in `Debug`, `Display`, logs or errors.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bitcoin::Network;
use vc_source::Source;
use vc_source::blk::{BlkConfig, BlkSource};
use vc_source::core::{CoreAuth, CoreConfig, CoreSource, RestMode};
use vc_source::electrum::{ElectrumConfig, ElectrumSource};

/// A parsed `--source`. `Debug` and `Display` never show a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// Bitcoin Core.
    Core {
        /// The host (an IPv6 address in brackets).
        host: String,
        /// The RPC port; `None`: the network's default ([`default_rpc_port`]).
        port: Option<u16>,
        /// Credentials; `None`: the cookie file in `bitcoin_data_dir`.
        auth: Option<CoreAuth>,
        /// Where to look for the cookie when `auth` is `None` (default:
        /// [`default_bitcoin_data_dir`]).
        bitcoin_data_dir: Option<PathBuf>,
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

/// Core's default RPC (and REST) port on `network`.
pub fn default_rpc_port(network: Network) -> u16 {
    match network {
        Network::Bitcoin => 8332,
        Network::Testnet => 18332,
        Network::Testnet4 => 48332,
        Network::Signet => 38332,
        Network::Regtest => 18443,
    }
}

/// The subdirectory of a Bitcoin data directory that holds `network`'s files (and cookie):
/// none for mainnet.
pub fn chain_subdir(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "",
        Network::Testnet => "testnet3",
        Network::Testnet4 => "testnet4",
        Network::Signet => "signet",
        Network::Regtest => "regtest",
    }
}

/// Core's default data directory: `~/Library/Application Support/Bitcoin` on macOS,
/// `~/.bitcoin` elsewhere (`None` without a home directory).
pub fn default_bitcoin_data_dir() -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?);
    Some(if cfg!(target_os = "macos") {
        home.join("Library/Application Support/Bitcoin")
    } else {
        home.join(".bitcoin")
    })
}

/// The cookie file of `network` in `bitcoin_data_dir` (default: [`default_bitcoin_data_dir`]):
/// `<dir>/.cookie` for mainnet, `<dir>/<chain>/.cookie` otherwise.
pub fn cookie_file(network: Network, bitcoin_data_dir: Option<&Path>) -> Result<PathBuf> {
    let dir = match bitcoin_data_dir {
        Some(d) => d.to_path_buf(),
        None => default_bitcoin_data_dir()
            .context("no home directory to find ~/.bitcoin in: give --bitcoin-data-dir")?,
    };
    Ok(dir.join(chain_subdir(network)).join(".cookie"))
}

/// Percent-decodes a URL's user or password.
fn decode(part: &str, what: &str) -> Result<String> {
    Ok(percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .with_context(|| format!("the {what} is not UTF-8 once percent-decoded"))?
        .into_owned())
}

/// `s` with any password in its authority (`scheme://user:PASS@host`) replaced by `***`, for
/// error messages.
fn redacted(s: &str) -> String {
    let Some((scheme, after)) = s.split_once("://") else {
        return s.to_owned();
    };
    let end = after.find(['?', '/']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    match authority.rsplit_once('@') {
        Some((creds, host)) => {
            let user = creds.split_once(':').map_or(creds, |(u, _)| u);
            let hidden = if creds.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{rest}")
        }
        None => s.to_owned(),
    }
}

/// An authority `[USER:PASS@]HOST[:PORT]`: host, port, decoded credentials. `shown` is what
/// errors name (already redacted).
fn authority(authority: &str, shown: &str) -> Result<(String, Option<u16>, Option<CoreAuth>)> {
    let (creds, hostport) = match authority.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, authority),
    };
    let auth = match creds {
        Some(c) => {
            let (user, pass) = c
                .split_once(':')
                .with_context(|| format!("{shown}: credentials are USER:PASS"))?;
            Some(CoreAuth::UserPass(
                decode(user, "user")?,
                decode(pass, "password")?,
            ))
        }
        None => None,
    };
    // `[::1]:8332`, `host:8332`, `host`.
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !hostport.ends_with(']') => {
            let port = p
                .parse::<u16>()
                .ok()
                .with_context(|| format!("{shown}: {p:?} is not a port"))?;
            (h, Some(port))
        }
        _ => (hostport, None),
    };
    if host.is_empty() {
        bail!("{shown} needs a HOST");
    }
    Ok((host.to_owned(), port, auth))
}

impl SourceSpec {
    /// Parses a `--source` value.
    pub fn parse(s: &str) -> Result<SourceSpec> {
        if let Some(path) = s.strip_prefix("blk:") {
            return Ok(SourceSpec::Blk(PathBuf::from(path)));
        }
        let shown = format!("source {:?}", redacted(s));
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
                            let hostport = socks5(p).with_context(|| {
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
                    _ => bail!("{shown} needs HOST:PORT"),
                }
            }
        }
        let (rest, after) = if let Some(a) = s.strip_prefix("core+rpc://") {
            (false, a)
        } else if let Some(a) = s.strip_prefix("core://") {
            (true, a)
        } else {
            bail!(
                "unknown {shown}: use core://USER:PASS@HOST:PORT, core://HOST:PORT?cookie=PATH, core://HOST (cookie in ~/.bitcoin, default port), core+rpc://..., blk:/path/to/blocks, electrum://HOST:PORT or electrum+tls://HOST:PORT"
            );
        };
        let (auth_part, query) = after.split_once('?').unwrap_or((after, ""));
        let (host, port, creds) = authority(auth_part.trim_end_matches('/'), &shown)?;
        let cookie = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("cookie="))
            .map(|p| decode(p, "cookie path").map(PathBuf::from))
            .transpose()?;
        let auth = match (creds, cookie) {
            (Some(_), Some(_)) => bail!("{shown}: give USER:PASS or a cookie, not both"),
            (creds, cookie) => creds.or(cookie.map(CoreAuth::Cookie)),
        };
        Ok(SourceSpec::Core {
            host,
            port,
            auth,
            bitcoin_data_dir: None,
            rest,
        })
    }

    /// Core as ord and electrs take it: `rpc_url` (`HOST`, `HOST:PORT` or
    /// `http://[USER:PASS@]HOST[:PORT]`; default `127.0.0.1` and the network's port),
    /// `rpc_user` with `rpc_pass`, else the cookie file in `bitcoin_data_dir` (default
    /// `~/.bitcoin`), checked to exist.
    pub fn from_flags(
        network: Network,
        bitcoin_data_dir: Option<PathBuf>,
        rpc_url: Option<String>,
        rpc_user: Option<String>,
        rpc_pass: Option<String>,
    ) -> Result<SourceSpec> {
        let url = rpc_url.unwrap_or_else(|| "127.0.0.1".into());
        let shown = format!("--bitcoin-rpc-url {:?}", redacted(&url));
        if url.starts_with("https://") {
            bail!("{shown}: Core serves plain HTTP; use http:// (TLS belongs to a tunnel)");
        }
        let bare = url.strip_prefix("http://").unwrap_or(&url);
        let (host, port, url_auth) = authority(bare.trim_end_matches('/'), &shown)?;
        let auth = match (rpc_user, rpc_pass) {
            (Some(user), Some(pass)) => CoreAuth::UserPass(user, pass),
            (None, None) => match url_auth {
                Some(auth) => auth,
                None => {
                    let cookie = cookie_file(network, bitcoin_data_dir.as_deref())?;
                    if !cookie.exists() {
                        return Err(crate::exit::InputError::Unavailable(format!(
                            "no cookie file at {} (is bitcoind running for {network} with this \
                             data directory? give --source, --bitcoin-data-dir, or \
                             --bitcoin-rpc-user and --bitcoin-rpc-pass)",
                            cookie.display()
                        ))
                        .into());
                    }
                    CoreAuth::Cookie(cookie)
                }
            },
            _ => bail!("--bitcoin-rpc-user and --bitcoin-rpc-pass go together"),
        };
        Ok(SourceSpec::Core {
            host,
            port: Some(port.unwrap_or(default_rpc_port(network))),
            auth: Some(auth),
            bitcoin_data_dir,
            rest: true,
        })
    }

    /// Connects, keeping what the source can reuse in `cache` (a directory) between runs: a
    /// blk source's block index, an Electrum source's validated headers. Each source has its
    /// own file there, named after the network and a hash of its directory or URL; the source
    /// checks the file and rebuilds it when it belongs elsewhere or is damaged.
    pub fn connect(&self, network: Network, cache: Option<&Path>) -> Result<Source> {
        Ok(match self {
            SourceSpec::Core { .. } => Source::blocks(self.core(network)?),
            SourceSpec::Blk(dir) => {
                let mut config = BlkConfig::new(dir, network);
                if let Some(cache) = cache {
                    let what = dir.display().to_string();
                    config = config.with_index_file(cache.join(cache_file("blk", network, &what)));
                }
                let source = BlkSource::open(config)
                    .with_context(|| format!("opening block files in {}", dir.display()))?;
                if cache.is_some() {
                    tracing::info!(dir = %dir.display(), origin = ?source.index_origin(), "block index");
                }
                Source::blocks(source)
            }
            SourceSpec::Electrum { url, ca, proxy } => {
                let mut config = ElectrumConfig::new(url.clone(), network);
                if let Some(cache) = cache {
                    config =
                        config.with_header_cache(cache.join(cache_file("electrum", network, url)));
                }
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

    /// The Core configuration on `network`: the default port and the data directory's cookie
    /// filled in where the source left them out.
    pub fn core_config(&self, network: Network) -> Result<CoreConfig> {
        let SourceSpec::Core {
            host,
            port,
            auth,
            bitcoin_data_dir,
            rest,
        } = self
        else {
            bail!("this command needs a core:// source");
        };
        let url = format!(
            "http://{host}:{}",
            port.unwrap_or(default_rpc_port(network))
        );
        let auth = match auth {
            Some(auth) => auth.clone(),
            None => CoreAuth::Cookie(cookie_file(network, bitcoin_data_dir.as_deref())?),
        };
        let mut config = CoreConfig::new(url, auth, network);
        if !rest {
            config.rest = RestMode::Off;
        }
        Ok(config)
    }

    /// Connects to Core (for commands that need Core's RPC, like finding coins).
    pub fn core(&self, network: Network) -> Result<CoreSource> {
        let config = self.core_config(network)?;
        let url = config.url.clone();
        CoreSource::connect(config).with_context(|| format!("connecting to {url}"))
    }
}

/// The source as a URL for logs: `core://USER:***@HOST:PORT`, never the password.
impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::Core {
                host,
                port,
                auth,
                bitcoin_data_dir,
                rest,
            } => {
                f.write_str(if *rest { "core://" } else { "core+rpc://" })?;
                if let Some(CoreAuth::UserPass(user, _)) = auth {
                    write!(f, "{user}:***@")?;
                }
                f.write_str(host)?;
                if let Some(port) = port {
                    write!(f, ":{port}")?;
                }
                match (auth, bitcoin_data_dir) {
                    (Some(CoreAuth::Cookie(path)), _) => write!(f, "?cookie={}", path.display()),
                    (None, Some(dir)) => write!(f, " (cookie in {})", dir.display()),
                    _ => Ok(()),
                }
            }
            SourceSpec::Blk(dir) => write!(f, "blk:{}", dir.display()),
            SourceSpec::Electrum { url, ca, proxy } => {
                f.write_str(url)?;
                let mut sep = '?';
                if let Some(ca) = ca {
                    write!(f, "{sep}ca={}", ca.display())?;
                    sep = '&';
                }
                if let Some(proxy) = proxy {
                    write!(f, "{sep}proxy={}", redacted(proxy))?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(host: &str, port: Option<u16>, auth: Option<CoreAuth>, rest: bool) -> SourceSpec {
        SourceSpec::Core {
            host: host.into(),
            port,
            auth,
            bitcoin_data_dir: None,
            rest,
        }
    }

    fn user_pass(user: &str, pass: &str) -> Option<CoreAuth> {
        Some(CoreAuth::UserPass(user.into(), pass.into()))
    }

    #[test]
    fn the_proxy_option_joins_electrum_sources_only() {
        let spec = SourceSpec::parse("electrum://abc.onion:50001").unwrap();
        let spec = with_proxy(spec, Some("socks5://127.0.0.1:9050")).unwrap();
        assert!(
            matches!(&spec, SourceSpec::Electrum { proxy: Some(p), .. } if p == "127.0.0.1:9050"),
            "{spec:?}"
        );
        assert!(with_proxy(spec, Some("socks5://127.0.0.1:9050")).is_err());
        let blk = SourceSpec::parse("blk:/tmp/blocks").unwrap();
        assert!(with_proxy(blk, Some("socks5://127.0.0.1:9050")).is_err());
        let plain = SourceSpec::parse("electrum://h:1").unwrap();
        assert!(with_proxy(plain, Some("http://127.0.0.1:9050")).is_err());
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            SourceSpec::parse("core://u:p@127.0.0.1:18443").unwrap(),
            core("127.0.0.1", Some(18443), user_pass("u", "p"), true)
        );
        assert_eq!(
            SourceSpec::parse("core+rpc://127.0.0.1:1?cookie=/tmp/c").unwrap(),
            core(
                "127.0.0.1",
                Some(1),
                Some(CoreAuth::Cookie("/tmp/c".into())),
                false
            )
        );
        // Percent-decoded credentials; a password may hold ':' and '@' once encoded.
        assert_eq!(
            SourceSpec::parse("core://us%20er:p%40ss%3Aw@node.lan:8332").unwrap(),
            core("node.lan", Some(8332), user_pass("us er", "p@ss:w"), true)
        );
        // No credentials: the cookie in the data directory; no port: the network's.
        assert_eq!(
            SourceSpec::parse("core://127.0.0.1").unwrap(),
            core("127.0.0.1", None, None, true)
        );
        assert_eq!(
            SourceSpec::parse("core://[::1]:8332").unwrap(),
            core("[::1]", Some(8332), None, true)
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
            "core://u@h:1",
            "core://u:p@",
            "core://h:port",
            "core://u:p@h:1?cookie=/c",
            "core://u:%FF@h:1",
        ] {
            assert!(SourceSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_ports_and_cookie_paths_follow_the_network() {
        let dir = Path::new("/data/btc");
        for (network, port, cookie) in [
            (Network::Bitcoin, 8332, "/data/btc/.cookie"),
            (Network::Testnet, 18332, "/data/btc/testnet3/.cookie"),
            (Network::Testnet4, 48332, "/data/btc/testnet4/.cookie"),
            (Network::Signet, 38332, "/data/btc/signet/.cookie"),
            (Network::Regtest, 18443, "/data/btc/regtest/.cookie"),
        ] {
            assert_eq!(default_rpc_port(network), port);
            assert_eq!(cookie_file(network, Some(dir)).unwrap(), Path::new(cookie));
            let spec = SourceSpec::Core {
                host: "127.0.0.1".into(),
                port: None,
                auth: None,
                bitcoin_data_dir: Some(dir.into()),
                rest: true,
            };
            let config = spec.core_config(network).unwrap();
            assert_eq!(config.url, format!("http://127.0.0.1:{port}"));
            assert_eq!(config.auth, CoreAuth::Cookie(cookie.into()));
        }
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            let want = if cfg!(target_os = "macos") {
                "Library/Application Support/Bitcoin/signet/.cookie"
            } else {
                ".bitcoin/signet/.cookie"
            };
            assert_eq!(
                cookie_file(Network::Signet, None).unwrap(),
                PathBuf::from(home).join(want)
            );
        }
    }

    #[test]
    fn flags_find_core_as_ord_does() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("signet")).unwrap();
        let cookie = dir.path().join("signet/.cookie");
        std::fs::write(&cookie, "__cookie__:abc").unwrap();
        // Nothing but the data directory: local node, default port, its cookie.
        let spec =
            SourceSpec::from_flags(Network::Signet, Some(dir.path().into()), None, None, None)
                .unwrap();
        let config = spec.core_config(Network::Signet).unwrap();
        assert_eq!(config.url, "http://127.0.0.1:38332");
        assert_eq!(config.auth, CoreAuth::Cookie(cookie.clone()));
        // A URL in any of the usual forms, user and password.
        for url in [
            "node.lan:9000",
            "http://node.lan:9000/",
            "http://node.lan:9000",
        ] {
            let spec = SourceSpec::from_flags(
                Network::Bitcoin,
                None,
                Some(url.into()),
                Some("alice".into()),
                Some("pw".into()),
            )
            .unwrap();
            let config = spec.core_config(Network::Bitcoin).unwrap();
            assert_eq!(config.url, "http://node.lan:9000", "{url}");
            assert_eq!(config.auth, CoreAuth::UserPass("alice".into(), "pw".into()));
        }
        let spec = SourceSpec::from_flags(
            Network::Testnet4,
            None,
            Some("http://bob:s%3Acret@10.0.0.2".into()),
            None,
            None,
        )
        .unwrap();
        let config = spec.core_config(Network::Testnet4).unwrap();
        assert_eq!(config.url, "http://10.0.0.2:48332");
        assert_eq!(
            config.auth,
            CoreAuth::UserPass("bob".into(), "s:cret".into())
        );
        // A missing cookie names where it was looked for; half the credentials are refused.
        let e = SourceSpec::from_flags(Network::Regtest, Some(dir.path().into()), None, None, None)
            .unwrap_err();
        assert!(e.to_string().contains("regtest/.cookie"), "{e}");
        assert!(
            SourceSpec::from_flags(Network::Regtest, None, None, Some("u".into()), None).is_err()
        );
        assert!(
            SourceSpec::from_flags(
                Network::Regtest,
                None,
                Some("https://h:1".into()),
                None,
                None
            )
            .is_err()
        );
    }

    #[test]
    fn a_password_is_never_shown() {
        let secret = "hunter2";
        let spec = SourceSpec::parse("core://alice:hunter2@127.0.0.1:8332").unwrap();
        let shown = format!("{spec} {spec:?}");
        assert!(
            shown.contains("alice") && !shown.contains(secret),
            "{shown}"
        );
        assert_eq!(spec.to_string(), "core://alice:***@127.0.0.1:8332");
        let spec = SourceSpec::from_flags(
            Network::Bitcoin,
            None,
            None,
            Some("alice".into()),
            Some(secret.into()),
        )
        .unwrap();
        let shown = format!(
            "{spec} {spec:?} {:?}",
            spec.core_config(Network::Bitcoin).unwrap()
        );
        assert!(!shown.contains(secret), "{shown}");
        // Errors about a URL with a password in it.
        for bad in [
            "core://alice:hunter2@",
            "core://alice:hunter2@h:notaport",
            "core://alice:hunter2@h:1?cookie=/c",
            "corez://alice:hunter2@h:1",
        ] {
            let e = format!("{:#}", SourceSpec::parse(bad).unwrap_err());
            assert!(!e.contains(secret), "{e}");
        }
        for url in [
            "http://alice:hunter2@h:notaport",
            "https://alice:hunter2@h:1",
        ] {
            let e = SourceSpec::from_flags(Network::Bitcoin, None, Some(url.into()), None, None)
                .unwrap_err();
            let e = format!("{e:#}");
            assert!(!e.contains(secret) && e.contains("alice"), "{e}");
        }
        // Connecting fails (nothing listens): the error does not name the password either.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let spec =
            SourceSpec::parse(&format!("core+rpc://alice:{secret}@127.0.0.1:{port}")).unwrap();
        let mut config = spec.core_config(Network::Regtest).unwrap();
        config.retry.attempts = 1;
        let e = CoreSource::connect(config).unwrap_err();
        let e = format!("{e} {e:?}");
        assert!(
            !e.contains(secret) && e.contains("getblockchaininfo"),
            "{e}"
        );
    }

    #[test]
    fn help_never_shows_a_source_url_taken_from_the_environment() {
        use clap::CommandFactory;
        let cli = crate::config::with_env(crate::Cli::command());
        let index = cli.find_subcommand("index").unwrap();
        let source = index
            .get_arguments()
            .find(|a| a.get_long() == Some("source"))
            .unwrap();
        assert!(source.is_hide_env_values_set());
    }
}

/// A password given on the command line, kept out of `Debug` output.
#[derive(Clone)]
pub struct Secret(pub String);

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Bitcoin Core as ord and electrs take it, for commands that read from or send to a node:
/// `--source` (a URL), or these flags, or nothing (the cookie in `~/.bitcoin` and the
/// network's default port).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct CoreArgs {
    /// Bitcoin Core's data directory, for its cookie file (NETWORK's subdirectory is added;
    /// default: ~/.bitcoin).
    #[arg(long, global = true, value_name = "DIR")]
    pub bitcoin_data_dir: Option<PathBuf>,
    /// Core's JSON-RPC address: HOST, HOST:PORT or http://USER:PASS@HOST:PORT (user, password
    /// and port optional; default: 127.0.0.1 and the network's port: 8332, 18332, 48332,
    /// 38332, 18443).
    #[arg(long, global = true, value_name = "URL")]
    pub bitcoin_rpc_url: Option<String>,
    /// Core's RPC user (with --bitcoin-rpc-pass; default: the cookie file).
    #[arg(long, global = true, value_name = "USER")]
    pub bitcoin_rpc_user: Option<String>,
    /// Core's RPC password (with --bitcoin-rpc-user). Prefer VIRTUALCHAIN_BITCOIN_RPC_PASS or
    /// the configuration file to the command line, which other users can read.
    #[arg(long, global = true, value_name = "PASS")]
    pub bitcoin_rpc_pass: Option<Secret>,
}

/// The `HOST:PORT` of a SOCKS5 proxy URL (`socks5://` or `socks5h://`; the proxy resolves
/// names either way).
fn socks5(url: &str) -> Option<&str> {
    url.strip_prefix("socks5://")
        .or_else(|| url.strip_prefix("socks5h://"))
        .filter(|hostport| !hostport.is_empty())
}

/// `--proxy socks5://HOST:PORT` for Electrum sources (the same as `?proxy=` in the URL), for
/// Tor: the proxy resolves the server's name, so `.onion` hosts work.
pub fn with_proxy(spec: SourceSpec, proxy: Option<&str>) -> Result<SourceSpec> {
    let Some(given) = proxy else {
        return Ok(spec);
    };
    let Some(hostport) = socks5(given) else {
        bail!(
            "--proxy {:?}: the proxy is socks5://HOST:PORT",
            redacted(given)
        );
    };
    match spec {
        SourceSpec::Electrum {
            url,
            ca,
            proxy: None,
        } => Ok(SourceSpec::Electrum {
            url,
            ca,
            proxy: Some(hostport.to_owned()),
        }),
        SourceSpec::Electrum { .. } => {
            bail!("--proxy and the source's ?proxy= both name a proxy; give one")
        }
        other => bail!(
            "--proxy applies to Electrum sources; {other} connects directly (put Core or its \
             files on this machine, or tunnel them)"
        ),
    }
}

impl CoreArgs {
    /// Whether any of the flags was given.
    fn any(&self) -> bool {
        self.bitcoin_data_dir.is_some()
            || self.bitcoin_rpc_url.is_some()
            || self.bitcoin_rpc_user.is_some()
            || self.bitcoin_rpc_pass.is_some()
    }

    /// The source: `source` if given (and then none of the flags), else Core from the flags.
    pub fn spec(&self, source: Option<&str>, network: Network) -> Result<SourceSpec> {
        match source {
            Some(url) if self.any() => bail!(
                "--source {:?} and the --bitcoin-* options both name the source; give one",
                redacted(url)
            ),
            Some(url) => SourceSpec::parse(url),
            None => SourceSpec::from_flags(
                network,
                self.bitcoin_data_dir.clone(),
                self.bitcoin_rpc_url.clone(),
                self.bitcoin_rpc_user.clone(),
                self.bitcoin_rpc_pass.clone().map(|p| p.0),
            ),
        }
    }
}

/// The name of a source's file in a `--source-cache` directory: its kind, the network, and the
/// first 8 bytes of the SHA-256 of its directory or URL, in hex.
fn cache_file(kind: &str, network: Network, what: &str) -> String {
    use bitcoin::hashes::{Hash, sha256};
    let hash = sha256::Hash::hash(what.as_bytes());
    let short: String = hash.as_byte_array()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{kind}-{network}-{short}.cache")
}
