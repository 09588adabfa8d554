//! Credentials for the operator's Prometheus connections: a bearer token,
//! basic auth, a CA to trust, a client certificate. They live in Secrets of
//! the operator's own namespace, named per Prometheus address by the
//! operator's configuration (`--prometheus-auth-secret`), never by a
//! Release: a Release that could name a Secret, or send a Secret's
//! credentials to an address of its choosing, could read what the platform
//! team keeps. So a Secret's credentials go only to the address it is named
//! for; a Release that points `spec.prometheus.address` anywhere else is
//! sent no credentials at all.
//!
//! The values never leave this module but as request headers and TLS
//! material: not in logs, status, Events nor error messages (which name the
//! Secret and the key, and what to do).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use k8s_openapi::ByteString;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use super::Context;
use super::cache::SECRET_WATCH;
use super::notify::SecretLookup;
use crate::analysis::tenancy::normalize_address;

/// Where the operator documents the Secret's keys.
pub const DOCS: &str = "docs/operations.md#authenticated-prometheus";

/// The keys read from a Secret (kubernetes.io/basic-auth's and
/// kubernetes.io/tls's names, so Secrets of those types, cert-manager's
/// included, work as they are).
pub const TOKEN: &str = "token";
pub const USERNAME: &str = "username";
pub const PASSWORD: &str = "password";
pub const CA: &str = "ca.crt";
pub const CERT: &str = "tls.crt";
pub const KEY: &str = "tls.key";

/// `--prometheus-auth-secret`: which Secret's credentials go to which
/// Prometheus address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthSecrets {
    /// For `--prometheus-url`, the operator's default Prometheus.
    pub default: Option<String>,
    /// By address, matched as the allow-list matches `spec.prometheus.address`
    /// ([`normalize_address`]).
    pub by_address: BTreeMap<String, String>,
}

impl AuthSecrets {
    /// Each value is `NAME` (the Secret for `--prometheus-url`) or
    /// `ADDRESS=NAME`; blanks are skipped.
    pub fn parse(values: &[String]) -> Result<AuthSecrets, String> {
        let mut out = AuthSecrets::default();
        for value in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
            let (address, name) = match value.rsplit_once('=') {
                Some((a, n)) => (Some(a.trim()), n.trim()),
                None => (None, value),
            };
            if !is_secret_name(name) {
                return Err(format!(
                    "{value:?}: {name:?} is not a Secret name (lowercase letters, digits, '-' \
                     and '.'); give NAME or ADDRESS=NAME, e.g. prometheus-auth or \
                     https://prometheus.monitoring:9090=prometheus-auth"
                ));
            }
            match address {
                None => {
                    if out.default.is_some() {
                        return Err(format!(
                            "{value:?}: a Secret for --prometheus-url is already named; \
                             give other addresses as ADDRESS=NAME"
                        ));
                    }
                    out.default = Some(name.to_owned());
                }
                Some(address) => {
                    let parsed = reqwest::Url::parse(address).ok();
                    if !parsed.as_ref().is_some_and(|u| {
                        matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
                    }) {
                        return Err(format!(
                            "{value:?}: {address:?} is not an http or https address; give \
                             ADDRESS=NAME, e.g. https://prometheus.monitoring:9090=prometheus-auth"
                        ));
                    }
                    let key = normalize_address(address);
                    if out.by_address.insert(key, name.to_owned()).is_some() {
                        return Err(format!(
                            "{value:?}: address {address:?} is given a Secret twice"
                        ));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The Secret whose credentials go to `url`, if any: the one named for
    /// that address, else, when `url` is the default Prometheus, the default one.
    pub fn for_address(&self, default_url: &str, url: &str) -> Option<&str> {
        let url = normalize_address(url);
        self.by_address
            .get(&url)
            .or_else(|| {
                self.default
                    .as_ref()
                    .filter(|_| url == normalize_address(default_url))
            })
            .map(String::as_str)
    }
}

fn is_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// What a query to one address goes with.
pub enum Access {
    /// No Secret is named for the address: no credentials, the system's CAs.
    Open,
    /// The Secret named for it, as the operator's cache has it.
    Secret {
        namespace: String,
        name: String,
        /// Its resourceVersion (when found): a new one rebuilds the client.
        version: Option<String>,
        lookup: SecretLookup,
    },
}

impl Access {
    /// What identifies the client built for `url` with this access: the
    /// Secret's version is part of it, so an edited Secret takes effect with
    /// the next query, without a restart.
    pub fn client_key(&self, url: &str) -> String {
        match self {
            Access::Open => url.to_owned(),
            Access::Secret {
                namespace,
                name,
                version,
                ..
            } => format!(
                "{url} {namespace}/{name}@{}",
                version.as_deref().unwrap_or("")
            ),
        }
    }

    /// `Secret NS/NAME`, for messages.
    fn secret(&self) -> Option<String> {
        match self {
            Access::Open => None,
            Access::Secret {
                namespace, name, ..
            } => Some(format!("Secret {namespace}/{name}")),
        }
    }

    /// The values that must never appear in a message.
    fn hidden(&self) -> Vec<String> {
        let Access::Secret {
            lookup: SecretLookup::Found(data),
            ..
        } = self
        else {
            return Vec::new();
        };
        [TOKEN, PASSWORD, KEY]
            .iter()
            .filter_map(|k| data.get(*k))
            .filter_map(|v| std::str::from_utf8(&v.0).ok())
            .map(str::trim)
            .filter(|v| v.len() >= 4)
            .map(str::to_owned)
            .collect()
    }

    /// `text` with any credential value it might quote replaced.
    pub fn scrub(&self, text: &str) -> String {
        self.hidden()
            .iter()
            .fold(text.to_owned(), |t, v| t.replace(v.as_str(), "<hidden>"))
    }
}

/// The access for queries to `url`, from the controller's Secret cache.
pub fn access(ctx: &Context, url: &str) -> Access {
    let Some(name) = ctx
        .config
        .prometheus_auth
        .for_address(&ctx.config.prometheus_url, url)
    else {
        return Access::Open;
    };
    let namespace = ctx.config.operator_namespace.clone();
    let (version, lookup) = if let Some(why) = ctx.cache.unavailable.why(SECRET_WATCH) {
        (None, SecretLookup::Refused(why))
    } else {
        match ctx.cache.secret(&namespace, name) {
            Some(s) => (
                s.metadata.resource_version,
                SecretLookup::Found(s.data.unwrap_or_default()),
            ),
            None => (None, SecretLookup::Missing),
        }
    };
    Access::Secret {
        namespace,
        name: name.to_owned(),
        version,
        lookup,
    }
}

/// A credential value: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Hidden(String);

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// What goes in the `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorization {
    Bearer(Hidden),
    Basic { username: String, password: Hidden },
}

/// The credentials one Secret holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub authorization: Option<Authorization>,
    /// PEM certificates to trust instead of the system's.
    pub ca: Option<Vec<u8>>,
    /// PEM certificate (chain) and private key, to present to Prometheus.
    pub client_cert: Option<(Vec<u8>, Hidden)>,
}

impl Credentials {
    /// What they do, for the log: the kinds, never the values.
    pub fn kinds(&self) -> String {
        let mut kinds = Vec::new();
        match &self.authorization {
            Some(Authorization::Bearer(_)) => kinds.push("bearer token"),
            Some(Authorization::Basic { .. }) => kinds.push("basic auth"),
            None => {}
        }
        if self.ca.is_some() {
            kinds.push("custom CA");
        }
        if self.client_cert.is_some() {
            kinds.push("client certificate");
        }
        kinds.join(", ")
    }
}

/// The credentials in `secret` (`Secret NS/NAME`) for queries to `url`, or
/// what is wrong with it: the Secret, the key and the fix, never a value.
pub fn read(
    url: &str,
    secret: &str,
    data: &BTreeMap<String, ByteString>,
) -> Result<Credentials, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        let Some(v) = data.get(key) else {
            return Ok(None);
        };
        let v = std::str::from_utf8(&v.0)
            .map_err(|_| format!("key {key:?} of {secret} is not text; {}", what(key)))?
            .trim();
        if v.is_empty() {
            return Err(format!("key {key:?} of {secret} is empty; {}", what(key)));
        }
        Ok(Some(v.to_owned()))
    };
    let token = text(TOKEN)?;
    let username = text(USERNAME)?;
    let password = text(PASSWORD)?;
    let ca = text(CA)?;
    let cert = text(CERT)?;
    let key = text(KEY)?;
    let authorization = match (token, username, password) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(format!(
                "{secret} has both key {TOKEN:?} and basic auth keys ({USERNAME:?}/{PASSWORD:?}); \
                 keep one: a bearer token or a username and password"
            ));
        }
        (Some(t), None, None) => Some(Authorization::Bearer(Hidden(t))),
        (None, Some(username), Some(p)) => Some(Authorization::Basic {
            username,
            password: Hidden(p),
        }),
        (None, Some(_), None) => {
            return Err(format!(
                "{secret} has key {USERNAME:?} but no key {PASSWORD:?}; basic auth needs both"
            ));
        }
        (None, None, Some(_)) => {
            return Err(format!(
                "{secret} has key {PASSWORD:?} but no key {USERNAME:?}; basic auth needs both"
            ));
        }
        (None, None, None) => None,
    };
    let client_cert = match (cert, key) {
        (Some(c), Some(k)) => Some((c.into_bytes(), Hidden(k))),
        (Some(_), None) => {
            return Err(format!(
                "{secret} has key {CERT:?} but no key {KEY:?}; a client certificate needs \
                 its private key (PEM) under {KEY:?}"
            ));
        }
        (None, Some(_)) => {
            return Err(format!(
                "{secret} has key {KEY:?} but no key {CERT:?}; put the client certificate \
                 (PEM) under {CERT:?}"
            ));
        }
        (None, None) => None,
    };
    let creds = Credentials {
        authorization,
        ca: ca.map(String::into_bytes),
        client_cert,
    };
    if creds == Credentials::default() {
        return Err(format!(
            "{secret} has none of the keys {TOKEN:?}, {USERNAME:?} and {PASSWORD:?}, {CA:?}, \
             {CERT:?} and {KEY:?}; put the credentials for Prometheus at {url} there (see {DOCS})"
        ));
    }
    let tls = creds.ca.is_some() || creds.client_cert.is_some();
    if tls && !url.starts_with("https://") {
        return Err(format!(
            "{secret} has TLS keys ({CA:?}, {CERT:?}, {KEY:?}) but Prometheus at {url} is \
             not https; give its https:// address"
        ));
    }
    Ok(creds)
}

/// What a key holds, for the fix in a message.
fn what(key: &str) -> &'static str {
    match key {
        TOKEN => "put the bearer token there",
        USERNAME | PASSWORD => {
            "put the basic auth username and password under username and password"
        }
        CA => "put the PEM certificate of the CA that signed Prometheus's certificate there",
        CERT => "put the client certificate (PEM) there",
        _ => "put the client certificate's private key (PEM) there",
    }
}

/// An HTTP client that sends `creds` (`secret` names them in messages).
pub fn client(secret: &str, creds: &Credentials) -> Result<reqwest::Client, String> {
    let mut headers = HeaderMap::new();
    if let Some(a) = &creds.authorization {
        let value = match a {
            Authorization::Bearer(Hidden(t)) => format!("Bearer {t}"),
            Authorization::Basic {
                username,
                password: Hidden(p),
            } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{p}"))
            ),
        };
        let key = match a {
            Authorization::Bearer(_) => TOKEN,
            Authorization::Basic { .. } => USERNAME,
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            format!(
                "key {key:?} of {secret} holds characters an HTTP header cannot carry; {}",
                what(key)
            )
        })?;
        // hyper leaves sensitive values out of its debug output.
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    let mut builder = reqwest::Client::builder().default_headers(headers);
    if let Some(ca) = &creds.ca {
        let certs = reqwest::Certificate::from_pem_bundle(ca)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                format!(
                    "key {CA:?} of {secret} is not PEM certificates; {}",
                    what(CA)
                )
            })?;
        // Only this CA: Prometheus's own, not every public one.
        builder = builder.tls_certs_only(certs);
    }
    if let Some((cert, Hidden(key))) = &creds.client_cert {
        let mut pem = cert.clone();
        pem.push(b'\n');
        pem.extend_from_slice(key.as_bytes());
        let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
            format!(
                "keys {CERT:?} and {KEY:?} of {secret} are not a PEM certificate and its \
                 private key; put the client certificate under {CERT:?} and its key under {KEY:?}"
            )
        })?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(|_| {
        format!(
            "the credentials of {secret} make no TLS configuration; check keys {CA:?}, {CERT:?} and {KEY:?}"
        )
    })
}

/// Why no client can be made for `url` with `access`, before any request.
pub fn unusable(url: &str, access: &Access) -> Option<String> {
    let Access::Secret {
        namespace,
        name,
        lookup,
        ..
    } = access
    else {
        return None;
    };
    match lookup {
        SecretLookup::Found(_) => None,
        SecretLookup::Missing => Some(format!(
            "the credentials for Prometheus at {url} are in Secret {namespace}/{name} \
             (--prometheus-auth-secret), which does not exist; create it in {namespace} \
             with the keys {TOKEN:?}, or {USERNAME:?} and {PASSWORD:?}, and/or {CA:?}, \
             {CERT:?} and {KEY:?} (see {DOCS})"
        )),
        SecretLookup::Refused(why) => Some(format!(
            "the credentials for Prometheus at {url} are in Secret {namespace}/{name}, and the \
             operator may not read Secrets in namespace {namespace} ({why}); grant its \
             ServiceAccount get, list and watch on secrets there (the chart's Role does)"
        )),
    }
}

/// The client for `url` with `access`, or why there is none.
pub fn build(url: &str, access: &Access) -> Result<(reqwest::Client, String), String> {
    if let Some(why) = unusable(url, access) {
        return Err(why);
    }
    let (
        Some(secret),
        Access::Secret {
            lookup: SecretLookup::Found(data),
            ..
        },
    ) = (access.secret(), access)
    else {
        return Ok((plain(), String::new()));
    };
    let creds = read(url, &secret, data)
        .map_err(|e| format!("Prometheus at {url}: {}", access.scrub(&e)))?;
    let client = client(&secret, &creds)
        .map_err(|e| format!("Prometheus at {url}: {}", access.scrub(&e)))?;
    Ok((client, creds.kinds()))
}

/// The client for an address with no credentials.
fn plain() -> reqwest::Client {
    reqwest::Client::new()
}

/// A failed query said in the release manager's words: a refusal of the
/// credentials (or of their absence) and a TLS failure say which Secret and
/// key to fix. Never a credential value.
pub fn explain(url: &str, access: &Access, error: &prometheus_http_query::Error) -> String {
    let status = match error {
        prometheus_http_query::Error::Client(c) => c.inner().and_then(reqwest::Error::status),
        _ => None,
    };
    let text = match (status, access.secret()) {
        (Some(s), Some(secret)) if s.as_u16() == 401 || s.as_u16() == 403 => format!(
            "Prometheus at {url} refused the credentials from {secret} ({s}); put ones it \
             accepts there"
        ),
        (Some(s), None) if s.as_u16() == 401 || s.as_u16() == 403 => format!(
            "Prometheus at {url} wants credentials ({s}) and the operator has none for this \
             address; name a Secret holding them with --prometheus-auth-secret (see {DOCS})"
        ),
        (Some(s), _) => format!("Prometheus at {url} answered {s}, not a query result"),
        (None, _) => {
            let causes = causes(error);
            match tls_hint(&causes, access) {
                Some(hint) => format!("Prometheus at {url}: {causes}; {hint}"),
                None => format!("Prometheus at {url}: {causes}"),
            }
        }
    };
    access.scrub(&text)
}

/// The error and its causes, without reqwest's repetition of the URL.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.starts_with("error sending request for url")
            && !parts.iter().any(|p| p.contains(&text))
        {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// What to do about a TLS failure, by what rustls said.
fn tls_hint(causes: &str, access: &Access) -> Option<String> {
    let secret = access.secret();
    let untrusted = causes.contains("invalid peer certificate")
        || causes.contains("UnknownIssuer")
        || causes.contains("NotValidForName");
    let refused = causes.contains("CertificateRequired")
        || causes.contains("BadCertificate")
        || causes.contains("HandshakeFailure")
        || causes.contains("UnknownCA")
        || causes.contains("certificate required");
    if untrusted {
        Some(match secret {
            Some(s) => format!(
                "Prometheus's certificate is not one the operator trusts: put the CA that \
                 signed it under key {CA:?} of {s}"
            ),
            None => format!(
                "Prometheus's certificate is not one the operator trusts: name a Secret with \
                 its CA under key {CA:?} for this address with --prometheus-auth-secret (see {DOCS})"
            ),
        })
    } else if refused {
        Some(match secret {
            Some(s) => format!(
                "Prometheus refused the TLS connection: it may require a client certificate \
                 its CA trusts, under keys {CERT:?} and {KEY:?} of {s}"
            ),
            None => format!(
                "Prometheus refused the TLS connection: it may require a client certificate; \
                 name a Secret with keys {CERT:?} and {KEY:?} for this address with \
                 --prometheus-auth-secret (see {DOCS})"
            ),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    const URL: &str = "https://prometheus.monitoring:9090";
    const SECRET: &str = "Secret ops/prom-auth";

    #[test]
    fn the_flag_names_a_secret_for_the_default_and_per_address() {
        let s = AuthSecrets::parse(&[
            "prom-auth".into(),
            " https://thanos.monitoring:10902/=thanos-auth ".into(),
            "".into(),
        ])
        .unwrap();
        assert_eq!(s.default.as_deref(), Some("prom-auth"));
        let default = "http://prometheus.monitoring:9090";
        assert_eq!(s.for_address(default, default), Some("prom-auth"));
        assert_eq!(
            s.for_address(default, &format!("{default}/")),
            Some("prom-auth")
        );
        assert_eq!(
            s.for_address(default, "https://thanos.monitoring:10902"),
            Some("thanos-auth")
        );
        // Any other address gets no credentials, whatever a Release writes.
        assert_eq!(s.for_address(default, "http://evil.example:9090"), None);
        assert_eq!(AuthSecrets::parse(&[]).unwrap(), AuthSecrets::default());

        let e = AuthSecrets::parse(&["a".into(), "b".into()]).unwrap_err();
        assert!(e.contains("already named"), "{e}");
        let e = AuthSecrets::parse(&["Prom_Auth".into()]).unwrap_err();
        assert!(e.contains("not a Secret name"), "{e}");
        let e = AuthSecrets::parse(&["prometheus:9090=x".into()]).unwrap_err();
        assert!(e.contains("not an http or https address"), "{e}");
        let e = AuthSecrets::parse(&["http://p:1=a".into(), "http://p:1/=b".into()]).unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn each_kind_of_credentials_is_read_from_its_keys() {
        let c = read(URL, SECRET, &data(&[("token", "s3cr3t-token\n")])).unwrap();
        assert_eq!(
            c.authorization,
            Some(Authorization::Bearer(Hidden("s3cr3t-token".into())))
        );
        assert_eq!(c.kinds(), "bearer token");
        let c = read(
            URL,
            SECRET,
            &data(&[
                ("username", "ops"),
                ("password", "pa55word"),
                ("ca.crt", "PEM"),
            ]),
        )
        .unwrap();
        assert_eq!(c.kinds(), "basic auth, custom CA");
        let c = read(
            URL,
            SECRET,
            &data(&[
                ("ca.crt", "A"),
                ("tls.crt", "B"),
                ("tls.key", "C"),
                ("other", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.kinds(), "custom CA, client certificate");
        assert!(!format!("{c:?}").contains("\"C\""), "{c:?}");
    }

    #[test]
    fn a_malformed_secret_names_the_secret_the_key_and_the_fix_never_a_value() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "Secret ops/prom-auth has none of the keys \"token\""),
            (
                &[("username", "ops")],
                "Secret ops/prom-auth has key \"username\" but no key \"password\"; basic auth needs both",
            ),
            (
                &[("password", "pa55word")],
                "has key \"password\" but no key \"username\"",
            ),
            (
                &[("token", "s3cr3t-token"), ("password", "pa55word")],
                "keep one: a bearer token or a username and password",
            ),
            (
                &[("tls.crt", "CERT")],
                "has key \"tls.crt\" but no key \"tls.key\"",
            ),
            (
                &[("tls.key", "k3y-material")],
                "has key \"tls.key\" but no key \"tls.crt\"",
            ),
            (
                &[("token", "  ")],
                "key \"token\" of Secret ops/prom-auth is empty; put the bearer token there",
            ),
        ];
        for (pairs, want) in cases {
            let e = read(URL, SECRET, &data(pairs)).unwrap_err();
            assert!(e.contains(want), "{pairs:?}: {e}");
            for (_, v) in *pairs {
                if v.trim().len() > 3 {
                    assert!(!e.contains(v), "{e} quotes {v}");
                }
            }
        }
        let e = read(
            "http://prometheus:9090",
            SECRET,
            &data(&[("ca.crt", "PEM")]),
        )
        .unwrap_err();
        assert!(e.contains("is not https"), "{e}");
        let mut binary = data(&[]);
        binary.insert("token".into(), ByteString(vec![0xff, 0xfe]));
        let e = read(URL, SECRET, &binary).unwrap_err();
        assert!(
            e.contains("key \"token\" of Secret ops/prom-auth is not text"),
            "{e}"
        );
    }

    #[test]
    fn bad_pem_and_header_values_are_refused_by_name() {
        let c = read(URL, SECRET, &data(&[("ca.crt", "not a certificate")])).unwrap();
        let e = client(SECRET, &c).unwrap_err();
        assert!(
            e.contains("key \"ca.crt\" of Secret ops/prom-auth is not PEM"),
            "{e}"
        );
        let c = read(
            URL,
            SECRET,
            &data(&[("tls.crt", "nope"), ("tls.key", "s3cr3t-key")]),
        )
        .unwrap();
        let e = client(SECRET, &c).unwrap_err();
        assert!(e.contains("\"tls.crt\" and \"tls.key\""), "{e}");
        assert!(!e.contains("s3cr3t-key"), "{e}");
        let c = read(URL, SECRET, &data(&[("token", "line\nbreak")])).unwrap();
        let e = client(SECRET, &c).unwrap_err();
        assert!(e.contains("key \"token\""), "{e}");
        assert!(!e.contains("line"), "{e}");
    }

    #[test]
    fn a_missing_or_unreadable_secret_says_how_to_fix_it() {
        let missing = Access::Secret {
            namespace: "ops".into(),
            name: "prom-auth".into(),
            version: None,
            lookup: SecretLookup::Missing,
        };
        let e = build(URL, &missing).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "the credentials for Prometheus at {URL} are in Secret ops/prom-auth \
                 (--prometheus-auth-secret), which does not exist; create it in ops"
            )),
            "{e}"
        );
        let refused = Access::Secret {
            namespace: "ops".into(),
            name: "prom-auth".into(),
            version: None,
            lookup: SecretLookup::Refused("403 Forbidden".into()),
        };
        let e = build(URL, &refused).unwrap_err();
        assert!(e.contains("may not read Secrets in namespace ops"), "{e}");
        assert!(build(URL, &Access::Open).is_ok());
        assert_eq!(Access::Open.client_key(URL), URL);
        let found = |v: &str| Access::Secret {
            namespace: "ops".into(),
            name: "prom-auth".into(),
            version: Some(v.into()),
            lookup: SecretLookup::Found(data(&[("token", "t")])),
        };
        assert_ne!(found("1").client_key(URL), found("2").client_key(URL));
    }
}
