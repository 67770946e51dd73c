//! How MiniTrue's MQTT clients — a node's receive loop ([`crate::ingest::mqtt`]) and the
//! publisher ([`crate::publisher`]) — reach their broker: the `--broker` URL, TLS and
//! credentials.
//!
//! - URLs: `tcp://host[:port]`, `mqtt://host[:port]` or `host[:port]` for plain TCP (port
//!   1883), `mqtts://host[:port]` for MQTT over TLS (port 8883). Credentials are never part of
//!   the URL (it shows up in `/status` and in logs).
//! - TLS (`mqtts://`) trusts exactly the CA certificates of `--broker_ca` (a PEM file): there
//!   is no implicit trust store, so what a node trusts is always written on its command line.
//!   For a broker with a publicly signed certificate pass the system bundle
//!   (`--broker_ca /etc/ssl/certs/ca-certificates.crt` on Debian). The broker's certificate
//!   must name the URL's host (DNS name or IP address). rustls 0.23 on ring does the work
//!   (rumqttc's own default provider would be aws-lc-rs, a C build).
//! - Credentials: `--broker_username` with `--broker_password_file`, a file holding the
//!   password (one trailing newline is dropped). The password never appears on a command
//!   line, in a log line or in a `Debug` print.

use crate::error::{Error, Result};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Port of a plain (`tcp://`, `mqtt://`) URL that names none.
pub const DEFAULT_MQTT_PORT: u16 = 1883;

/// Port of an `mqtts://` URL that names none.
pub const DEFAULT_MQTTS_PORT: u16 = 8883;

/// Where the broker listens and whether it speaks TLS, parsed from `--broker`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: TLS over TCP.
    pub tls: bool,
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "tcp" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl BrokerAddr {
    /// Whether the host is this machine (`localhost`, 127.0.0.0/8, `::1`).
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// Parses a broker URL (see the module doc). An IPv6 host is written in brackets
/// (`tcp://[::1]:1883`).
pub fn parse_broker_url(url: &str) -> std::result::Result<BrokerAddr, String> {
    let trimmed = url.trim();
    let (tls, rest) = match trimmed.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "tcp" | "mqtt" => (false, rest),
            "mqtts" => (true, rest),
            other => {
                return Err(format!(
                    "scheme {other:?} is not supported (use tcp://, mqtt:// or mqtts://)"
                ))
            }
        },
        None => (false, trimmed),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('?') || rest.contains('@') {
        return Err(
            "expected host[:port] with no path, query or credentials (credentials go in \
             --broker_username and --broker_password_file)"
                .to_string(),
        );
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("unclosed '[' in IPv6 host")?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected {after:?} after IPv6 host")),
            },
        }
    } else {
        match rest.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err("IPv6 hosts must be written in brackets, e.g. [::1]:1883".to_string())
            }
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err("host is empty".to_string());
    }
    let port = match port {
        None if tls => DEFAULT_MQTTS_PORT,
        None => DEFAULT_MQTT_PORT,
        Some(text) => match text.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err(format!("port {text:?} is not a number in 1..=65535")),
        },
    };
    Ok(BrokerAddr {
        host: host.to_string(),
        port,
        tls,
    })
}

/// A password read from a file; its `Debug` shows no character of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The password itself, for the one place that sends or compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Reads a password file for the flag `flag`: UTF-8 (MQTT passwords travel as strings
/// here), one trailing `\n` or `\r\n` dropped, not empty.
pub fn read_password_file(path: &Path, flag: &str) -> Result<Password> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid(flag, format!("cannot read {}: {e}", path.display())))?;
    let password = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(Error::invalid(
            flag,
            format!("{} holds no password", path.display()),
        ));
    }
    Ok(Password(password.to_string()))
}

/// A user name and its password, as sent in MQTT CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Password,
}

/// The CA certificates of `--broker_ca`, loaded.
#[derive(Clone, Debug)]
pub struct TrustedCa {
    pub path: PathBuf,
    roots: Arc<RootCertStore>,
}

impl TrustedCa {
    /// Loads every certificate of the PEM file at `path`; fails if there is none.
    pub fn load(path: &Path) -> Result<TrustedCa> {
        TrustedCa::load_for("broker_ca", path)
    }

    /// [`TrustedCa::load`] for the flag `flag` (named in the error).
    pub fn load_for(flag: &str, path: &Path) -> Result<TrustedCa> {
        let bad = |why: String| Error::invalid(flag, format!("{}: {why}", path.display()));
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("cannot read: {e}")))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
        let mut roots = RootCertStore::empty();
        let (added, _unparsable) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bad("holds no usable CA certificate".to_string()));
        }
        Ok(TrustedCa {
            path: path.to_path_buf(),
            roots: Arc::new(roots),
        })
    }

    /// A rustls client configuration trusting these CAs, on the ring provider.
    pub fn client_config(&self) -> Result<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                Error::invalid("tls", format!("tls setup for {}: {e}", self.path.display()))
            })?
            .with_root_certificates(Arc::clone(&self.roots))
            .with_no_client_auth();
        Ok(config)
    }
}

/// The broker flags `minitrue-server` and `minitrue-publisher` share (clap, flattened into
/// each one's flags).
#[derive(clap::Args, Debug, Clone)]
pub struct BrokerFlags {
    /// MQTT broker URL: tcp://HOST:PORT, mqtt://HOST:PORT or HOST:PORT (port 1883 if
    /// omitted), or mqtts://HOST:PORT for TLS (8883 if omitted; needs --broker_ca). No
    /// credentials in it.
    #[arg(long, default_value = "tcp://localhost:1883")]
    pub broker: String,
    /// PEM file of the CA certificates trusted for an mqtts:// broker (the only trust: for a
    /// publicly signed broker give the system bundle, /etc/ssl/certs/ca-certificates.crt).
    #[arg(long = "broker_ca")]
    pub broker_ca: Option<PathBuf>,
    /// MQTT user name; needs --broker_password_file.
    #[arg(long = "broker_username")]
    pub broker_username: Option<String>,
    /// File holding the MQTT password (a trailing newline is dropped); needs
    /// --broker_username.
    #[arg(long = "broker_password_file")]
    pub broker_password_file: Option<PathBuf>,
}

impl BrokerFlags {
    /// Reads the files the flags name (see [`ClientSecurity::from_flags`]).
    pub fn security(&self) -> Result<ClientSecurity> {
        ClientSecurity::from_flags(
            self.broker_ca.as_deref(),
            self.broker_username.clone(),
            self.broker_password_file.as_deref(),
        )
    }
}

/// What a client needs beyond the address: whom to trust and who it is.
#[derive(Clone, Debug, Default)]
pub struct ClientSecurity {
    /// `--broker_ca`; required for, and only allowed with, `mqtts://`.
    pub ca: Option<TrustedCa>,
    pub credentials: Option<Credentials>,
}

impl ClientSecurity {
    /// Reads the files the flags name: `--broker_ca`, `--broker_username` and
    /// `--broker_password_file` (the last two only together).
    pub fn from_flags(
        ca: Option<&Path>,
        username: Option<String>,
        password_file: Option<&Path>,
    ) -> Result<ClientSecurity> {
        let credentials = match (username, password_file) {
            (Some(username), Some(file)) => {
                if username.is_empty() {
                    return Err(Error::invalid("broker_username", "is empty"));
                }
                Some(Credentials {
                    username,
                    password: read_password_file(file, "broker_password_file")?,
                })
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::invalid(
                    "broker_password_file",
                    "required with --broker_username (the password is read from a file, \
                     never taken on the command line)",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "broker_username",
                    "required with --broker_password_file",
                ))
            }
        };
        Ok(ClientSecurity {
            ca: ca.map(TrustedCa::load).transpose()?,
            credentials,
        })
    }

    /// Refuses `mqtts://` without `--broker_ca`, and `--broker_ca` with a plain URL (whoever
    /// gave a CA expects TLS).
    pub fn check(&self, addr: &BrokerAddr) -> Result<()> {
        match (&self.ca, addr.tls) {
            (None, true) => Err(Error::invalid(
                "broker_ca",
                format!(
                    "required for {addr}: the PEM file of the CA that signed the broker's \
                     certificate (for a publicly signed one, the system bundle such as \
                     /etc/ssl/certs/ca-certificates.crt)"
                ),
            )),
            (Some(_), false) => Err(Error::invalid(
                "broker_ca",
                format!("given, but {addr} is plain TCP: use an mqtts:// URL"),
            )),
            _ => Ok(()),
        }
    }

    /// Sets `options`' transport (TLS for `mqtts://`) and credentials for `addr`, after
    /// [`ClientSecurity::check`].
    pub fn apply(&self, addr: &BrokerAddr, options: &mut MqttOptions) -> Result<()> {
        self.check(addr)?;
        if let (Some(ca), true) = (&self.ca, addr.tls) {
            let config = ca.client_config()?;
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(config),
            )));
        }
        if let Some(credentials) = &self.credentials {
            options.set_credentials(
                credentials.username.clone(),
                credentials.password.expose().to_string(),
            );
        }
        Ok(())
    }

    /// Whether a password would cross a network unencrypted to `addr`: plain TCP to a host
    /// other than this machine's loopback.
    pub fn password_in_clear(&self, addr: &BrokerAddr) -> bool {
        self.credentials.is_some() && !addr.tls && !addr.is_loopback()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(host: &str, port: u16) -> BrokerAddr {
        BrokerAddr {
            host: host.to_string(),
            port,
            tls: false,
        }
    }

    fn tls_addr(host: &str, port: u16) -> BrokerAddr {
        BrokerAddr {
            tls: true,
            ..addr(host, port)
        }
    }

    #[test]
    fn broker_url_accepts_tcp_mqtt_and_bare_forms() {
        assert_eq!(
            parse_broker_url("tcp://localhost:1883"),
            Ok(addr("localhost", 1883))
        );
        assert_eq!(
            parse_broker_url("mqtt://10.0.0.5:11883"),
            Ok(addr("10.0.0.5", 11883))
        );
        assert_eq!(
            parse_broker_url("broker.local:2000"),
            Ok(addr("broker.local", 2000))
        );
        assert_eq!(parse_broker_url("TCP://h:1/"), Ok(addr("h", 1)));
    }

    #[test]
    fn broker_url_without_port_defaults_to_1883_or_8883_for_mqtts() {
        assert_eq!(parse_broker_url("tcp://broker"), Ok(addr("broker", 1883)));
        assert_eq!(parse_broker_url("broker"), Ok(addr("broker", 1883)));
        assert_eq!(
            parse_broker_url("mqtts://broker"),
            Ok(tls_addr("broker", 8883))
        );
        assert_eq!(
            parse_broker_url("MQTTS://[::1]:9883"),
            Ok(tls_addr("::1", 9883))
        );
    }

    #[test]
    fn broker_url_takes_bracketed_ipv6() {
        assert_eq!(parse_broker_url("tcp://[::1]:1884"), Ok(addr("::1", 1884)));
        assert_eq!(parse_broker_url("[::1]"), Ok(addr("::1", 1883)));
        assert_eq!(addr("::1", 1884).to_string(), "tcp://[::1]:1884");
        assert_eq!(tls_addr("h", 8883).to_string(), "mqtts://h:8883");
    }

    #[test]
    fn bad_broker_urls_are_refused_with_a_reason() {
        for (url, needle) in [
            ("", "host is empty"),
            ("tcp://", "host is empty"),
            ("mqtts://", "host is empty"),
            ("tcp://:1883", "host is empty"),
            ("ssl://h:8883", "scheme"),
            ("http://h", "scheme"),
            ("tcp://h:abc", "port"),
            ("tcp://h:0", "port"),
            ("tcp://h:70000", "port"),
            ("tcp://h:1883/path", "no path"),
            ("tcp://user@h", "credentials"),
            ("mqtts://user:pw@h", "credentials"),
            ("::1", "brackets"),
            ("[::1", "unclosed"),
        ] {
            let e = parse_broker_url(url).unwrap_err();
            assert!(e.contains(needle), "{url:?}: {e}");
        }
    }

    fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("minitrue-mqtt-link-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        path
    }

    #[test]
    fn password_file_drops_one_trailing_newline_only() {
        for (name, contents, want) in [
            ("lf", &b"s3cret\n"[..], "s3cret"),
            ("crlf", b"s3cret\r\n", "s3cret"),
            ("none", b"s3cret", "s3cret"),
            ("two", b"s3cret\n\n", "s3cret\n"),
            ("spaces", b" s3 cret \n", " s3 cret "),
        ] {
            let path = temp_file(name, contents);
            let password = read_password_file(&path, "password_file").unwrap();
            assert_eq!(password.expose(), want, "{name}");
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn empty_or_missing_password_file_is_refused_naming_the_flag() {
        let path = temp_file("empty", b"\n");
        let e = read_password_file(&path, "broker_password_file").unwrap_err();
        assert!(e.to_string().contains("broker_password_file"), "{e}");
        let _ = std::fs::remove_file(&path);
        let e = read_password_file(&path, "broker_password_file").unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    fn password_never_shows_in_debug() {
        let path = temp_file("debug", b"hunter2-xyz\n");
        let security = ClientSecurity::from_flags(None, Some("u".into()), Some(&path)).unwrap();
        let _ = std::fs::remove_file(path);
        let printed = format!("{security:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("redacted"), "{printed}");
    }

    #[test]
    fn a_password_is_in_clear_over_plain_tcp_off_this_machine_only() {
        let path = temp_file("clear", b"pw\n");
        let security = ClientSecurity::from_flags(None, Some("u".into()), Some(&path)).unwrap();
        let _ = std::fs::remove_file(path);
        assert!(security.password_in_clear(&addr("broker.example.org", 1883)));
        assert!(security.password_in_clear(&addr("10.0.0.5", 1883)));
        for host in ["localhost", "127.0.0.1", "127.1.2.3", "::1"] {
            assert!(!security.password_in_clear(&addr(host, 1883)), "{host}");
        }
        assert!(!security.password_in_clear(&tls_addr("broker.example.org", 8883)));
        assert!(!ClientSecurity::default().password_in_clear(&addr("10.0.0.5", 1883)));
    }

    #[test]
    fn username_and_password_file_come_together() {
        let e = ClientSecurity::from_flags(None, Some("u".into()), None).unwrap_err();
        assert!(e.to_string().contains("broker_password_file"), "{e}");
        let e =
            ClientSecurity::from_flags(None, None, Some(Path::new("/nonexistent"))).unwrap_err();
        assert!(e.to_string().contains("broker_username"), "{e}");
    }

    #[test]
    fn mqtts_needs_a_ca_and_a_ca_needs_mqtts() {
        let mut options = MqttOptions::new("c", "h", 1);
        let none = ClientSecurity::default();
        let e = none.apply(&tls_addr("h", 8883), &mut options).unwrap_err();
        assert!(e.to_string().contains("broker_ca"), "{e}");
        assert!(none.apply(&addr("h", 1883), &mut options).is_ok());
    }

    #[test]
    fn ca_file_without_certificates_is_refused() {
        let path = temp_file("not-a-ca", b"hello\n");
        let e = TrustedCa::load(&path).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(e.to_string().contains("broker_ca"), "{e}");
        assert!(TrustedCa::load(Path::new("/nonexistent/ca.pem")).is_err());
    }
}
