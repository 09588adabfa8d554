//! The shell side of analysis: run one instant query and reduce the answer to
//! an [`analysis::QueryResult`](crate::analysis::QueryResult). Judging the
//! number is pure and lives in the core's `analysis`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_http_query::Client;
use prometheus_http_query::response::Data;
use tokio::sync::Semaphore;

use crate::analysis::QueryResult;

/// How long one query may take before it counts as an error.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prometheus clients by base URL (one per distinct `spec.prometheus.address`),
/// and the bound on queries in flight at once across every Release, so that a
/// thousand bakes measuring together queue here instead of at Prometheus.
pub struct Prometheus {
    clients: Mutex<HashMap<String, Client>>,
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

    fn client(&self, url: &str) -> Result<Client, String> {
        let mut clients = self.clients.lock().unwrap();
        if let Some(c) = clients.get(url) {
            return Ok(c.clone());
        }
        let c = Client::try_from(url).map_err(|e| format!("bad Prometheus URL {url:?}: {e}"))?;
        clients.insert(url.to_string(), c.clone());
        Ok(c)
    }

    /// Run `query` at `url` now: one number is a value, an empty result is no
    /// data, anything else (several series, a range vector, an error, no answer
    /// within [`QUERY_TIMEOUT`]) is an error saying what happened.
    pub async fn instant(&self, url: &str, query: &str) -> QueryResult {
        let client = match self.client(url) {
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
            Ok(Err(e)) => return QueryResult::Error(format!("Prometheus at {url}: {e}")),
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
