//! Who is calling: the token table of `--auth_file`, the credential shapes real clients
//! send, and the role a caller holds.
//!
//! The auth file is TOML, one `[[token]]` table per credential:
//!
//! ```toml
//! [[token]]
//! name = "grafana"          # named in the audit log
//! role = "read"             # read | write | admin
//! sha256 = "9f86d0…"        # lowercase hex SHA-256 of the token; the token itself is never stored
//! ```
//!
//! Roles nest: `read` runs queries and listings and opens `/ws`; `write` adds `/write` and
//! `/api/v2/write`; `admin` adds `/delete` and the cluster's `/internal/*` calls. A token is
//! accepted as `Authorization: Bearer T` (Grafana, Prometheus), `Authorization: Token T`
//! (InfluxDB 2 clients, Telegraf), Basic auth with the token as the password, or the query
//! parameters `p=T` (InfluxDB 1 clients, the `influx` CLI; `u` is ignored) and `token=T`
//! (browsers opening `/ws`, which cannot set headers). The table is swapped whole on
//! reload (SIGHUP), so a bad edit keeps the previous table in force.

use super::errors::ApiError;
use crate::error::{Error, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// What a token may do; each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// Who a request comes from, once its credential has been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The node runs without `--auth_file`: everyone may do everything.
    Anyone,
    /// A token of the auth file.
    Token { name: String, role: Role },
    /// A peer that proved it holds the cluster secret.
    Peer,
}

impl Caller {
    pub fn role(&self) -> Role {
        match self {
            Caller::Anyone | Caller::Peer => Role::Admin,
            Caller::Token { role, .. } => *role,
        }
    }

    /// How the audit log names the caller.
    pub fn describe(&self) -> String {
        match self {
            Caller::Anyone => "anyone (auth off)".to_string(),
            Caller::Token { name, .. } => format!("token {name:?}"),
            Caller::Peer => "a cluster peer".to_string(),
        }
    }
}

/// One accepted token: its name, role and digest.
#[derive(Clone, Debug)]
struct Token {
    name: String,
    role: Role,
    digest: [u8; 32],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: Role,
    sha256: String,
}

/// The tokens of `--auth_file`, reloadable while requests are served.
#[derive(Debug)]
pub struct TokenTable {
    path: PathBuf,
    tokens: RwLock<Arc<Vec<Token>>>,
}

impl TokenTable {
    /// Reads and validates the file; any problem is an error naming the file.
    pub fn load(path: &Path) -> Result<TokenTable> {
        let tokens = read_tokens(path)?;
        Ok(TokenTable {
            path: path.to_path_buf(),
            tokens: RwLock::new(Arc::new(tokens)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file and swaps the table in; on error the previous table stays.
    /// Returns how many tokens are now accepted.
    pub fn reload(&self) -> Result<usize> {
        let tokens = Arc::new(read_tokens(&self.path)?);
        let count = tokens.len();
        *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = tokens;
        Ok(count)
    }

    /// How many tokens are accepted now.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The caller holding `token`, if any. Every entry is compared, each in constant time,
    /// so the answer's timing says nothing about which entry (or how much of one) matched.
    pub fn identify(&self, token: &str) -> Option<Caller> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for entry in self.snapshot().iter() {
            if constant_time_eq(&presented, &entry.digest) && found.is_none() {
                found = Some(Caller::Token {
                    name: entry.name.clone(),
                    role: entry.role,
                });
            }
        }
        found
    }

    fn snapshot(&self) -> Arc<Vec<Token>> {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn read_tokens(path: &Path) -> Result<Vec<Token>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_tokens(&text)
        .map_err(|reason| Error::invalid("auth_file", format!("{}: {reason}", path.display())))
}

/// Parses and validates the TOML text of an auth file.
fn parse_tokens(text: &str) -> std::result::Result<Vec<Token>, String> {
    let file: AuthFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let mut tokens: Vec<Token> = Vec::with_capacity(file.token.len());
    for (i, entry) in file.token.into_iter().enumerate() {
        let at = format!("token #{}", i + 1);
        if entry.name.trim().is_empty() {
            return Err(format!("{at}: name must not be empty"));
        }
        if tokens.iter().any(|t| t.name == entry.name) {
            return Err(format!("{at}: name {:?} is used twice", entry.name));
        }
        let digest = parse_digest(&entry.sha256).ok_or_else(|| {
            format!(
                "{at} ({}): sha256 must be 64 hex digits (the SHA-256 of the token, e.g. \
                 `printf %s TOKEN | sha256sum`)",
                entry.name
            )
        })?;
        if tokens.iter().any(|t| t.digest == digest) {
            return Err(format!(
                "{at} ({}): same token as another entry",
                entry.name
            ));
        }
        tokens.push(Token {
            name: entry.name,
            role: entry.role,
            digest,
        });
    }
    Ok(tokens)
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(digest)
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The token a request presents: from `Authorization` (Bearer, Token or Basic) or else the
/// query parameters `p` and `token`. `None` when it presents none; a malformed header is a
/// 401 naming what is wrong with it.
pub fn presented_token(
    authorization: Option<&str>,
    query: &str,
) -> std::result::Result<Option<String>, ApiError> {
    if let Some(header) = authorization {
        let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        let rest = rest.trim();
        let token = match scheme.to_ascii_lowercase().as_str() {
            "bearer" | "token" => rest.to_string(),
            "basic" => {
                basic_password(rest).ok_or_else(|| unauthorized("malformed Basic credentials"))?
            }
            _ => {
                return Err(unauthorized(
                    "unsupported Authorization scheme: use Bearer, Token or Basic",
                ))
            }
        };
        if token.is_empty() {
            return Err(unauthorized("empty token in Authorization"));
        }
        return Ok(Some(token));
    }
    for name in ["p", "token"] {
        if let Some(token) = super::query_param(query, name)? {
            if !token.is_empty() {
                return Ok(Some(token));
            }
        }
    }
    Ok(None)
}

/// A 401 answer's error value; the router adds `WWW-Authenticate`.
pub fn unauthorized(message: &str) -> ApiError {
    ApiError::new(401, message)
}

/// The password of `base64(user:password)`.
fn basic_password(encoded: &str) -> Option<String> {
    let decoded = String::from_utf8(base64_decode(encoded)?).ok()?;
    let (_, password) = decoded.split_once(':')?;
    Some(password.to_string())
}

/// Standard base64 (RFC 4648, `=` padding optional); `None` on any other character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let text = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut bits = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            bits |= value(c)? << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// The lowercase hex SHA-256 of `token`: what an auth file lists for it.
#[cfg(test)]
pub fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> TokenTable {
        TokenTable {
            path: PathBuf::from("test.toml"),
            tokens: RwLock::new(Arc::new(parse_tokens(text).expect("valid auth file"))),
        }
    }

    fn two_tokens() -> String {
        format!(
            "[[token]]\nname = \"grafana\"\nrole = \"read\"\nsha256 = \"{}\"\n\n\
             [[token]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
            sha256_hex("read-secret"),
            sha256_hex("admin-secret")
        )
    }

    #[test]
    fn tokens_are_identified_by_their_digest() {
        let t = table(&two_tokens());
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.identify("read-secret"),
            Some(Caller::Token {
                name: "grafana".into(),
                role: Role::Read
            })
        );
        assert_eq!(
            t.identify("admin-secret").map(|c| c.role()),
            Some(Role::Admin)
        );
        assert_eq!(t.identify("read-secre"), None);
        assert_eq!(t.identify(""), None);
    }

    #[test]
    fn roles_nest() {
        assert!(Role::Read < Role::Write && Role::Write < Role::Admin);
        assert_eq!(Caller::Anyone.role(), Role::Admin);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let cases = [
            (
                "[[token]]\nname = \"a\"\nrole = \"root\"\nsha256 = \"00\"\n",
                "root",
            ),
            (
                "[[token]]\nname = \"a\"\nrole = \"read\"\nsha256 = \"abc\"\n",
                "64 hex",
            ),
            (
                "[[token]]\nname = \"\"\nrole = \"read\"\nsha256 = \"abc\"\n",
                "name",
            ),
            ("[[token]]\nname = \"a\"\nrole = \"read\"\n", "sha256"),
            ("[[tokens]]\nname = \"a\"\n", "tokens"),
            ("not toml at all [", ""),
        ];
        for (text, needle) in cases {
            let e = parse_tokens(text)
                .err()
                .unwrap_or_else(|| panic!("{text} accepted"));
            assert!(e.contains(needle), "{text}: {e}");
        }
        let dup = format!(
            "[[token]]\nname = \"a\"\nrole = \"read\"\nsha256 = \"{0}\"\n\
             [[token]]\nname = \"b\"\nrole = \"read\"\nsha256 = \"{0}\"\n",
            sha256_hex("x")
        );
        assert!(parse_tokens(&dup).unwrap_err().contains("same token"));
    }

    #[test]
    fn reload_swaps_the_table_and_keeps_it_on_error() {
        let dir = std::env::temp_dir().join(format!("minitrue-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("auth.toml");
        std::fs::write(&path, two_tokens()).unwrap();
        let t = TokenTable::load(&path).unwrap();
        assert!(t.identify("read-secret").is_some());
        std::fs::write(
            &path,
            format!(
                "[[token]]\nname = \"new\"\nrole = \"write\"\nsha256 = \"{}\"\n",
                sha256_hex("new-secret")
            ),
        )
        .unwrap();
        assert_eq!(t.reload().unwrap(), 1);
        assert!(t.identify("read-secret").is_none());
        assert!(t.identify("new-secret").is_some());
        std::fs::write(&path, "broken [").unwrap();
        assert!(t.reload().is_err());
        assert!(t.identify("new-secret").is_some(), "old table kept");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn credentials_come_in_every_client_shape() {
        let got = |auth: Option<&str>, query: &str| presented_token(auth, query).unwrap();
        assert_eq!(got(Some("Bearer abc"), ""), Some("abc".into()));
        assert_eq!(got(Some("bearer  abc "), ""), Some("abc".into()));
        assert_eq!(got(Some("Token abc"), ""), Some("abc".into()));
        // "user:abc" in base64.
        assert_eq!(got(Some("Basic dXNlcjphYmM="), ""), Some("abc".into()));
        assert_eq!(got(None, "db=x&u=user&p=abc"), Some("abc".into()));
        assert_eq!(got(None, "token=a%2Bb"), Some("a+b".into()));
        assert_eq!(got(None, "db=x"), None);
        for bad in ["Digest x", "Bearer", "Basic !!!", "Basic dXNlcg=="] {
            assert_eq!(
                presented_token(Some(bad), "").unwrap_err().status,
                401,
                "{bad}"
            );
        }
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI").unwrap(), b"ab");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("Y").is_none());
        assert!(base64_decode("Y$==").is_none());
    }
}
