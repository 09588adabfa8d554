//! Who may talk to the dashboard. It acts with the user's own credentials,
//! so a page the user visits elsewhere must not be able to read it through
//! a rebound DNS name, nor press its buttons with a forged request.
//!
//! Every request must name the dashboard in `Host` (a DNS-rebinding page
//! names its own host); a request that changes something must also come from
//! the dashboard's own page: its `Origin` is that host, and it carries the
//! token the page was served with, which no other origin can read.

use axum::http::{HeaderMap, StatusCode, header};

/// Header the page sends its token in.
pub const TOKEN_HEADER: &str = "x-signalman-token";

#[derive(Clone, Debug)]
pub struct Guard {
    /// `host:port` values a request may name; empty accepts any (a wildcard
    /// bind address, whose names the dashboard cannot know).
    hosts: Vec<String>,
    token: String,
    allow_actions: bool,
}

/// Why a request is turned away, and the status it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

fn refused(status: StatusCode, message: impl Into<String>) -> Refused {
    Refused {
        status,
        message: message.into(),
    }
}

impl Guard {
    /// For a dashboard bound to `address:port`.
    pub fn new(address: &str, port: u16, token: String, allow_actions: bool) -> Guard {
        let wildcard = matches!(address, "0.0.0.0" | "::" | "[::]");
        let hosts = if wildcard {
            Vec::new()
        } else {
            let mut hosts = vec![
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ];
            let named = if address.contains(':') && !address.starts_with('[') {
                format!("[{address}]:{port}")
            } else {
                format!("{address}:{port}")
            };
            if !hosts.contains(&named) {
                hosts.push(named);
            }
            hosts
        };
        Guard {
            hosts,
            token,
            allow_actions,
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn allow_actions(&self) -> bool {
        self.allow_actions
    }

    /// Any request: `Host` must be the dashboard's.
    pub fn check_host(&self, headers: &HeaderMap) -> Result<(), Refused> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if self.hosts.is_empty() || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            Ok(())
        } else {
            Err(refused(
                StatusCode::MISDIRECTED_REQUEST,
                format!("this dashboard answers to {} only", self.hosts.join(", ")),
            ))
        }
    }

    /// A request that writes to the cluster: only with `--allow-actions`, only
    /// from the dashboard's own page (`Origin` is the `Host` it asked, and the
    /// page's token is in [`TOKEN_HEADER`]).
    pub fn check_action(&self, headers: &HeaderMap) -> Result<(), Refused> {
        if !self.allow_actions {
            return Err(refused(
                StatusCode::FORBIDDEN,
                "this dashboard is read-only: start it with --allow-actions to pause, resume, abort or approve from the page",
            ));
        }
        self.check_host(headers)?;
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if host.is_empty() || !origin.eq_ignore_ascii_case(&format!("http://{host}")) {
            return Err(refused(
                StatusCode::FORBIDDEN,
                "refused: the request does not come from this dashboard's page (Origin)",
            ));
        }
        let token = headers
            .get(TOKEN_HEADER)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !constant_time_eq(token.as_bytes(), self.token.as_bytes()) {
            return Err(refused(
                StatusCode::FORBIDDEN,
                "refused: the request does not carry this dashboard's token",
            ));
        }
        Ok(())
    }
}

/// Compare without stopping at the first differing byte, so the time taken
/// says nothing about how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh token: 32 bytes from the operating system's random source, in hex.
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("reading random bytes for the token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn page(port: u16, token: &str) -> HeaderMap {
        let host = format!("127.0.0.1:{port}");
        headers(&[
            ("host", &host),
            ("origin", &format!("http://{host}")),
            (TOKEN_HEADER, token),
        ])
    }

    #[test]
    fn without_allow_actions_even_the_pages_own_request_is_refused() {
        let g = Guard::new("127.0.0.1", 3100, "t0k".into(), false);
        let e = g.check_action(&page(3100, "t0k")).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("--allow-actions"), "{}", e.message);
    }

    #[test]
    fn with_allow_actions_the_pages_own_request_passes() {
        let g = Guard::new("127.0.0.1", 3100, "t0k".into(), true);
        assert_eq!(g.check_action(&page(3100, "t0k")), Ok(()));
        let mut localhost = page(3100, "t0k");
        localhost.insert(header::HOST, HeaderValue::from_static("localhost:3100"));
        localhost.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://localhost:3100"),
        );
        assert_eq!(g.check_action(&localhost), Ok(()));
    }

    #[test]
    fn a_forged_request_is_refused_even_with_allow_actions() {
        let g = Guard::new("127.0.0.1", 3100, "t0k".into(), true);
        // Another site's page: its own Origin.
        let mut other = page(3100, "t0k");
        other.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert_eq!(
            g.check_action(&other).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        // No Origin at all (a script outside a browser, or an old form post).
        let mut none = page(3100, "t0k");
        none.remove(header::ORIGIN);
        assert!(g.check_action(&none).is_err());
        // The right origin without the token, or with a wrong one.
        let mut tokenless = page(3100, "t0k");
        tokenless.remove(TOKEN_HEADER);
        assert!(g.check_action(&tokenless).is_err());
        assert!(g.check_action(&page(3100, "t0x")).is_err());
        // A rebound DNS name pointing at 127.0.0.1: Host is the attacker's.
        let rebound = headers(&[
            ("host", "evil.example:3100"),
            ("origin", "http://evil.example:3100"),
            (TOKEN_HEADER, "t0k"),
        ]);
        assert_eq!(
            g.check_action(&rebound).unwrap_err().status,
            StatusCode::MISDIRECTED_REQUEST
        );
        // Another port on localhost is another origin.
        assert!(g.check_action(&page(3101, "t0k")).is_err());
    }

    #[test]
    fn reads_answer_only_to_the_dashboards_host() {
        let g = Guard::new("127.0.0.1", 3100, "t0k".into(), false);
        assert!(
            g.check_host(&headers(&[("host", "127.0.0.1:3100")]))
                .is_ok()
        );
        assert!(
            g.check_host(&headers(&[("host", "LOCALHOST:3100")]))
                .is_ok()
        );
        assert!(
            g.check_host(&headers(&[("host", "evil.example:3100")]))
                .is_err()
        );
        assert!(g.check_host(&HeaderMap::new()).is_err());
        // A wildcard bind cannot know its names: reads are not checked, writes still are.
        let open = Guard::new("0.0.0.0", 3100, "t0k".into(), true);
        assert!(
            open.check_host(&headers(&[("host", "10.0.0.5:3100")]))
                .is_ok()
        );
        let mut cross = page(3100, "t0k");
        cross.insert(header::HOST, HeaderValue::from_static("10.0.0.5:3100"));
        assert!(open.check_action(&cross).is_err());
    }

    #[test]
    fn tokens_are_long_and_differ() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
