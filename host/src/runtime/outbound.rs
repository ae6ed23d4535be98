//! `allowed_outbound_hosts`: which network destinations a component may reach.
//!
//! Entries follow Spin's syntax, `scheme://host[:port]`, where the scheme may be `*`,
//! the host `*` or `*.domain`, and the port a number, a range `a..b` (end exclusive),
//! `*`, or omitted (then the scheme's well-known port). This module only parses and
//! matches; callers enforce (outgoing HTTP in [`super::http`], Postgres in
//! [`super::postgres`]).

use std::fmt;

/// Why an `allowed_outbound_hosts` entry was refused.
#[derive(Debug, thiserror::Error)]
#[error("allowed outbound host `{entry}` is not valid: {reason}")]
pub struct InvalidOutboundHost {
    entry: String,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Subdomains(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Range(u16, u16),
}

/// One parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

/// The parsed `allowed_outbound_hosts` of one component.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Vec<AllowedHost>,
}

/// The well-known port of a scheme, used when an entry or URL omits it.
pub fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "postgres" | "postgresql" => 5432,
        "redis" => 6379,
        "mysql" => 3306,
        _ => return None,
    })
}

impl AllowedHost {
    /// Parses one entry (templates already expanded).
    pub fn parse(entry: &str) -> Result<Self, InvalidOutboundHost> {
        let invalid = |reason| InvalidOutboundHost {
            entry: entry.to_owned(),
            reason,
        };
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| invalid("expected scheme://host[:port]"))?;
        if scheme.is_empty() {
            return Err(invalid("empty scheme"));
        }
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(invalid("paths are not allowed"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => {
                (host, Some(port))
            }
            _ => (rest, None),
        };
        let host = match host {
            "" => return Err(invalid("empty host")),
            "*" => HostPattern::Any,
            h if h.starts_with("*.") => HostPattern::Subdomains(h[1..].to_ascii_lowercase()),
            h if h.contains('*') => return Err(invalid("`*` may only stand alone or as `*.`")),
            h => HostPattern::Exact(h.to_ascii_lowercase()),
        };
        let port = match port {
            Some("*") => PortPattern::Any,
            Some(p) => {
                if let Some((start, end)) = p.split_once("..") {
                    let start = start.parse().map_err(|_| invalid("bad port range start"))?;
                    let end: u16 = end.parse().map_err(|_| invalid("bad port range end"))?;
                    if end <= start {
                        return Err(invalid("empty port range"));
                    }
                    PortPattern::Range(start, end - 1)
                } else {
                    let port = p.parse().map_err(|_| invalid("bad port"))?;
                    PortPattern::Range(port, port)
                }
            }
            None if scheme == "*" => PortPattern::Any,
            None => {
                let port = default_port(scheme)
                    .ok_or_else(|| invalid("this scheme has no default port: give one"))?;
                PortPattern::Range(port, port)
            }
        };
        Ok(Self {
            scheme: (scheme != "*").then(|| scheme.to_ascii_lowercase()),
            host,
            port,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = match &self.scheme {
            None => true,
            Some(s) => s == scheme || (s == "postgres" && scheme == "postgresql"),
        };
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomains(suffix) => host.ends_with(suffix.as_str()),
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Range(start, end) => (start..=end).contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }
}

impl OutboundPolicy {
    /// Parses every entry; the first invalid one stops start-up.
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, InvalidOutboundHost> {
        let allowed = entries
            .into_iter()
            .map(AllowedHost::parse)
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    /// Whether a connection to `scheme://host:port` is allowed; `port` defaults to the
    /// scheme's well-known port.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme = scheme.to_ascii_lowercase();
        let Some(port) = port.or_else(|| default_port(&scheme)) else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allowed.iter().any(|a| a.allows(&scheme, host, port))
    }
}

impl fmt::Display for OutboundPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} allowed outbound host(s)", self.allowed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy::parse(entries.iter().copied()).expect("valid entries")
    }

    /// Exact entries allow only their scheme, host and port.
    #[test]
    fn exact_entry_allows_only_itself() {
        let p = policy(&["http://127.0.0.1:3001"]);
        assert!(p.allows("http", "127.0.0.1", Some(3001)));
        assert!(!p.allows("http", "127.0.0.1", Some(3002)));
        assert!(!p.allows("https", "127.0.0.1", Some(3001)));
        assert!(!p.allows("http", "localhost", Some(3001)));
    }

    /// An entry without a port means the scheme's default port.
    #[test]
    fn omitted_port_is_the_default_port() {
        let p = policy(&["https://oauth.yandex.ru", "postgres://127.0.0.1"]);
        assert!(p.allows("https", "oauth.yandex.ru", None));
        assert!(p.allows("https", "OAUTH.yandex.ru", Some(443)));
        assert!(!p.allows("https", "oauth.yandex.ru", Some(8443)));
        assert!(p.allows("postgres", "127.0.0.1", Some(5432)));
    }

    /// Wildcards cover schemes, subdomains and port ranges.
    #[test]
    fn wildcards_and_ranges() {
        let p = policy(&["*://*.example.com:*", "http://localhost:8000..8002"]);
        assert!(p.allows("http", "api.example.com", Some(1)));
        assert!(!p.allows("http", "example.com", Some(1)));
        assert!(p.allows("http", "localhost", Some(8001)));
        assert!(!p.allows("http", "localhost", Some(8002)));
    }

    /// Malformed entries are errors, not silently ignored.
    #[test]
    fn rejects_malformed_entries() {
        for entry in [
            "127.0.0.1:80",
            "http://",
            "http://a/b",
            "ftp://host",
            "http://h:0..0",
            "http://a*b",
        ] {
            assert!(AllowedHost::parse(entry).is_err(), "{entry}");
        }
    }

    /// No entries means no network.
    #[test]
    fn empty_policy_allows_nothing() {
        assert!(!OutboundPolicy::default().allows("http", "127.0.0.1", Some(80)));
    }
}
