//! The shell side of analysis: run one instant query and reduce the answer to
//! an [`analysis::QueryResult`](crate::analysis::QueryResult). Judging the
//! number is pure and lives in the core's `analysis`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_http_query::Client;
use prometheus_http_query::response::Data;
use tokio::sync::Semaphore;

use super::prometheus_auth::{self, Access};
use crate::analysis::QueryResult;

/// How long one query may take before it counts as an error.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prometheus clients by base URL (one per distinct `spec.prometheus.address`,
/// and per version of the Secret whose credentials it sends, if any), or why
/// that Secret gives none; and the bound on queries in flight at once across
/// every Release, so that a thousand bakes measuring together queue here
/// instead of at Prometheus.
pub struct Prometheus {
    clients: Mutex<HashMap<String, Result<Client, String>>>,
    in_flight: Semaphore,
}

impl Prometheus {
    /// At most `max_queries` queries in flight at once (at least one).
    pub fn new(max_queries: usize) -> Self {
        Prometheus {
            clients: Mutex::default(),
            in_flight: Semaphore::new(max_queries.max(1)),
        }
    }

    fn client(&self, url: &str, access: &Access) -> Result<Client, String> {
        if let Some(why) = prometheus_auth::unusable(url, access) {
            return Err(why);
        }
        let key = access.client_key(url);
        let mut clients = self.clients.lock().unwrap();
        if let Some(c) = clients.get(&key) {
            return c.clone();
        }
        // An edited Secret: the clients of its older versions go.
        let secret = key.split_once('@').map(|(s, _)| format!("{s}@"));
        if let Some(secret) = &secret {
            clients.retain(|k, _| !k.starts_with(secret.as_str()));
        }
        let built = prometheus_auth::build(url, access).and_then(|(http, kinds)| {
            if !kinds.is_empty() {
                // Which Secret and what kinds, never a value.
                let secret = key.split_once(' ').map_or("", |k| k.1);
                tracing::info!(
                    address = url,
                    credentials = %secret,
                    kinds = %kinds,
                    "Prometheus client built with credentials"
                );
            }
            Client::from(http, url).map_err(|e| format!("bad Prometheus URL {url:?}: {e}"))
        });
        if let Err(e) = &built {
            tracing::warn!(address = url, error = %e, "no Prometheus client");
        }
        clients.insert(key, built.clone());
        built
    }

    /// Run `query` at `url` now: one number is a value, an empty result is no
    /// data, anything else (several series, a range vector, an error, no answer
    /// within [`QUERY_TIMEOUT`]) is an error saying what happened.
    pub async fn instant(&self, url: &str, query: &str) -> QueryResult {
        self.instant_as(url, query, &Access::Open).await
    }

    /// [`Prometheus::instant`] with the credentials `access` gives; a failure
    /// says which Secret and key to fix, never a credential.
    pub async fn instant_as(&self, url: &str, query: &str, access: &Access) -> QueryResult {
        let client = match self.client(url, access) {
            Ok(c) => c,
            Err(e) => return QueryResult::Error(e),
        };
        // Never closed, so a permit always comes; the timeout starts once
        // the query is really sent.
        let _permit = self.in_flight.acquire().await.ok();
        let timeout_ms = QUERY_TIMEOUT.as_millis() as i64;
        let run = client.query(query).timeout(timeout_ms).get();
        let res = match tokio::time::timeout(QUERY_TIMEOUT, run).await {
            Err(_) => {
                return QueryResult::Error(format!(
                    "Prometheus at {url} did not answer within {}s",
                    QUERY_TIMEOUT.as_secs()
                ));
            }
            Ok(Err(e)) => return QueryResult::Error(prometheus_auth::explain(url, access, &e)),
            Ok(Ok(res)) => res,
        };
        reduce(res.data())
    }
}

fn reduce(data: &Data) -> QueryResult {
    match data {
        Data::Scalar(s) => QueryResult::Value(s.value()),
        Data::Vector(v) => match v.as_slice() {
            [] => QueryResult::NoData,
            [one] => QueryResult::Value(one.sample().value()),
            many => QueryResult::Error(format!(
                "the query returned {} series, not one number; aggregate it (e.g. sum(...))",
                many.len()
            )),
        },
        Data::Matrix(_) => QueryResult::Error(
            "the query returned a range vector, not one number; use an instant query".into(),
        ),
    }
}

/// A Prometheus that answers every instant query with one number after a
/// delay, counting the queries it got and the most it had in flight at once.
#[cfg(test)]
pub(crate) mod fake {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Default)]
    pub struct Seen {
        pub queries: AtomicUsize,
        /// The last query asked, decoded.
        pub last_query: std::sync::Mutex<String>,
        pub in_flight: AtomicUsize,
        pub most_in_flight: AtomicUsize,
    }

    /// The `query` parameter of a GET request line, percent-decoded.
    fn query_of(request: &[u8]) -> String {
        let text = String::from_utf8_lossy(request);
        let line = text.lines().next().unwrap_or_default();
        let target = line.split(' ').nth(1).unwrap_or_default();
        let Some(q) = target
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("query="))
        else {
            return String::new();
        };
        let bytes = q.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("3F");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Serve until the test ends; returns the base URL and what it saw.
    pub async fn serve(delay: Duration) -> (String, Arc<Seen>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Seen::default());
        let s = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    s.queries.fetch_add(1, Ordering::SeqCst);
                    *s.last_query.lock().unwrap() = query_of(&buf);
                    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    s.most_in_flight.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    s.in_flight.fetch_sub(1, Ordering::SeqCst);
                    let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"0.5"]}}"#;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(resp.as_bytes()).await;
                });
            }
        });
        (url, seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::Ordering;

    use k8s_openapi::ByteString;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::controller::notify::SecretLookup;

    /// A Prometheus that answers 401 unless the request carries
    /// `Authorization: Bearer right-token`.
    async fn wants_token() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&buf).to_lowercase();
                let (status, kind, body) = if request.contains("authorization: bearer right-token")
                {
                    (
                        "200 OK",
                        "application/json",
                        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"1"]}}"#,
                    )
                } else {
                    ("401 Unauthorized", "text/plain", "Unauthorized")
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            }
        });
        url
    }

    fn token(value: &str, version: &str) -> Access {
        Access::Secret {
            namespace: "ops".into(),
            name: "prom-token".into(),
            version: Some(version.into()),
            lookup: SecretLookup::Found(BTreeMap::from([(
                "token".to_owned(),
                ByteString(value.as_bytes().to_vec()),
            )])),
        }
    }

    #[tokio::test]
    async fn credentials_are_sent_refusals_name_the_secret_and_an_edit_takes_effect() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = wants_token().await;
        let prometheus = Prometheus::new(2);
        let refused = prometheus
            .instant_as(&url, "up", &token("wrong-token-value", "1"))
            .await;
        assert_eq!(
            refused,
            QueryResult::Error(format!(
                "Prometheus at {url} refused the credentials from Secret ops/prom-token \
                 (401 Unauthorized); put ones it accepts there"
            ))
        );
        let none = prometheus.instant(&url, "up").await;
        assert_eq!(
            none,
            QueryResult::Error(format!(
                "Prometheus at {url} wants credentials (401 Unauthorized) and the operator has \
                 none for this address; name a Secret holding them with --prometheus-auth-secret \
                 (see docs/operations.md#authenticated-prometheus)"
            ))
        );
        // The Secret edited (a new resourceVersion): the next query uses it.
        let ok = prometheus
            .instant_as(&url, "up", &token("right-token", "2"))
            .await;
        assert_eq!(ok, QueryResult::Value(1.0));
        assert_eq!(
            prometheus.clients.lock().unwrap().len(),
            2,
            "the old version's client went"
        );
    }

    #[tokio::test]
    async fn no_more_queries_in_flight_than_the_bound() {
        let (url, seen) = fake::serve(Duration::from_millis(100)).await;
        let prometheus = Prometheus::new(2);
        let runs = (0..8).map(|i| prometheus.instant(&url, if i % 2 == 0 { "up" } else { "1" }));
        let results = futures::future::join_all(runs).await;
        assert!(
            results.iter().all(|r| *r == QueryResult::Value(0.5)),
            "{results:?}"
        );
        assert_eq!(seen.queries.load(Ordering::SeqCst), 8);
        assert_eq!(seen.most_in_flight.load(Ordering::SeqCst), 2);
    }
}
