//! Cross-origin requests: which web pages may call this node from a browser.
//!
//! The dashboard is served by the node itself, so it is same-origin and needs nothing.
//! Other origins are refused unless `--cors_origins` lists them (default: none; `*` is not
//! accepted). A request whose `Origin` is neither same-origin nor listed
//! - gets no `Access-Control-Allow-Origin`, so the browser hides the answer from the page;
//! - is refused with 403 when it could change something (any method but `GET`, `HEAD`
//!   and `OPTIONS`) or opens `/ws` — a "simple" cross-site `text/plain` POST is sent by
//!   browsers without a preflight, so hiding the answer alone would not stop a delete.
//!
//! The dashboard of one node fails over to the others and polls their `/status`, so the
//! HTTP address of every cluster member counts as an allowed origin too (with `localhost`,
//! `127.0.0.1` and `[::1]` taken as one host, since a page opened as `localhost:8080`
//! reaches members advertised as `127.0.0.1:8081`).
//!
//! Requests without `Origin` (curl, Telegraf, Grafana's backend, our peers) are not
//! browser cross-site requests and pass untouched; credentials guard those.

/// What an `Origin` header means for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginVerdict {
    /// No `Origin`: not a browser cross-site request.
    Absent,
    /// The page was served by this node (`Origin` matches `Host`).
    SameOrigin,
    /// A listed origin: answered with `Access-Control-Allow-Origin` naming it.
    Allowed(String),
    /// Any other origin, `null` included.
    Refused(String),
}

impl OriginVerdict {
    /// The refused origin, when a request with this verdict must be refused: one that can
    /// change data or opens the live stream.
    pub fn forbids(&self, changes_data: bool) -> Option<&str> {
        match self {
            OriginVerdict::Refused(origin) if changes_data => Some(origin),
            _ => None,
        }
    }
}

/// The allowed origins of `--cors_origins`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    /// Validates each origin: `scheme://host[:port]`, no path, no `*`.
    pub fn new(origins: &[String]) -> Result<OriginPolicy, String> {
        let mut allowed = Vec::with_capacity(origins.len());
        for origin in origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
            let Some((scheme, host)) = origin.split_once("://") else {
                return Err(format!(
                    "{origin:?} is not an origin: write scheme://host[:port], e.g. http://localhost:5173"
                ));
            };
            if scheme != "http" && scheme != "https" {
                return Err(format!("{origin:?}: scheme must be http or https"));
            }
            if host.is_empty() || host.contains(['/', '*', ' ', '?', '#']) {
                return Err(format!(
                    "{origin:?}: host must be a name or address with an optional port, no path or wildcard"
                ));
            }
            allowed.push(origin.to_ascii_lowercase());
        }
        Ok(OriginPolicy { allowed })
    }

    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    /// Judges `origin` for a request that arrived with `Host: host`; `members` gives the
    /// advertised HTTP addresses (`host:port`) of the cluster's members, asked only when
    /// the origin is neither same-origin nor listed.
    pub fn judge(
        &self,
        origin: Option<&str>,
        host: Option<&str>,
        members: &dyn Fn() -> Vec<String>,
    ) -> OriginVerdict {
        let Some(origin) = origin.map(str::trim) else {
            return OriginVerdict::Absent;
        };
        let lower = origin.to_ascii_lowercase();
        let authority = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"));
        if let (Some(authority), Some(host)) = (authority, host) {
            if authority == host.trim().to_ascii_lowercase() {
                return OriginVerdict::SameOrigin;
            }
        }
        let member = || {
            authority.is_some_and(|a| {
                let scheme_port = if lower.starts_with("https") { 443 } else { 80 };
                members().iter().any(|m| same_endpoint(a, m, scheme_port))
            })
        };
        if self.allowed.contains(&lower) || member() {
            OriginVerdict::Allowed(origin.to_string())
        } else {
            OriginVerdict::Refused(origin.to_string())
        }
    }
}

/// Whether an origin's `host[:port]` names the member at `member` (`host:port`), loopback
/// names being one host.
fn same_endpoint(authority: &str, member: &str, default_port: u16) -> bool {
    let (host, port) = split_authority(authority, default_port);
    let member = member.to_ascii_lowercase();
    let (member_host, member_port) = split_authority(&member, 0);
    port == member_port && (host == member_host || (is_loopback(host) && is_loopback(member_host)))
}

/// `host:port` → (host, port); a missing or unreadable port is `default_port`.
fn split_authority(authority: &str, default_port: u16) -> (&str, u16) {
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().unwrap_or(default_port)),
        _ => (authority, default_port),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "[::1]" || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> OriginPolicy {
        let owned: Vec<String> = origins.iter().map(|s| s.to_string()).collect();
        OriginPolicy::new(&owned).unwrap()
    }

    fn no_members() -> Vec<String> {
        Vec::new()
    }

    fn local_cluster() -> Vec<String> {
        vec!["127.0.0.1:8080".into(), "127.0.0.1:8081".into()]
    }

    #[test]
    fn same_origin_and_absent_pass() {
        let p = policy(&[]);
        assert_eq!(
            p.judge(None, Some("h:1"), &no_members),
            OriginVerdict::Absent
        );
        assert_eq!(
            p.judge(
                Some("http://127.0.0.1:8080"),
                Some("127.0.0.1:8080"),
                &no_members
            ),
            OriginVerdict::SameOrigin
        );
        assert_eq!(
            p.judge(
                Some("https://Node.Example:443"),
                Some("node.example:443"),
                &no_members
            ),
            OriginVerdict::SameOrigin
        );
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let p = policy(&["http://localhost:5173"]);
        assert_eq!(
            p.judge(
                Some("http://localhost:5173"),
                Some("127.0.0.1:8080"),
                &no_members
            ),
            OriginVerdict::Allowed("http://localhost:5173".into())
        );
        let evil = p.judge(
            Some("http://evil.example"),
            Some("127.0.0.1:8080"),
            &no_members,
        );
        assert_eq!(evil, OriginVerdict::Refused("http://evil.example".into()));
        assert_eq!(evil.forbids(true), Some("http://evil.example"));
        assert_eq!(evil.forbids(false), None);
        assert!(p
            .judge(Some("null"), Some("127.0.0.1:8080"), &no_members)
            .forbids(true)
            .is_some());
        // A port-less lookalike of the host is another origin.
        assert!(p
            .judge(
                Some("http://127.0.0.1"),
                Some("127.0.0.1:8080"),
                &no_members
            )
            .forbids(true)
            .is_some());
    }

    #[test]
    fn cluster_members_dashboards_are_allowed() {
        let p = policy(&[]);
        let at = |origin: &str| p.judge(Some(origin), Some("127.0.0.1:8081"), &local_cluster);
        assert_eq!(
            at("http://localhost:8080"),
            OriginVerdict::Allowed("http://localhost:8080".into())
        );
        assert!(matches!(
            at("http://127.0.0.1:8080"),
            OriginVerdict::Allowed(_)
        ));
        assert!(matches!(at("http://[::1]:8080"), OriginVerdict::Allowed(_)));
        assert!(
            at("http://localhost:8083").forbids(true).is_some(),
            "not a member port"
        );
        assert!(
            at("http://evil.example:8080").forbids(true).is_some(),
            "not a member host"
        );
        assert!(at("http://localhost").forbids(true).is_some());
    }

    #[test]
    fn wildcards_and_paths_are_refused() {
        for bad in [
            "*",
            "http://*.example",
            "http://a.example/path",
            "ftp://a",
            "a.example",
        ] {
            assert!(OriginPolicy::new(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert!(OriginPolicy::new(&["https://grafana.example:3000".into()]).is_ok());
    }
}
