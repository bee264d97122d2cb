//! Values with units, one way everywhere: durations (`5s`, `500ms`, `2m`, a bare number is
//! seconds) and listening addresses (`127.0.0.1:8339`, `localhost:8339`, `[::1]:8339`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// The longest duration any option takes: a day.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses a duration: a number with `ms`, `s`, `m` or `h`, or a bare number of seconds; at
/// most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use ms, s, m or h; a bare number is seconds)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 10s, 500ms or 2m"))?;
    let secs = value * scale;
    if !secs.is_finite() || secs > MAX_DURATION.as_secs_f64() {
        return Err(format!("{s:?} is longer than the limit of 24h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses an address to listen on, resolving a host name (`localhost:8339`) to its first
/// address.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| format!("{s:?} is not HOST:PORT ({e})"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit_and_bare_seconds() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "s",
            "5 parsecs",
            "-1",
            "1e400",
            "9223372036854775807",
            "25h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn listening_addresses_take_host_names() {
        assert_eq!(
            parse_listen("127.0.0.1:8339"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 8339)))
        );
        let local = parse_listen("localhost:8339");
        assert!(local.is_ok_and(|a| a.ip().is_loopback() && a.port() == 8339));
        assert!(parse_listen("localhost").is_err());
    }
}
