//! traffic-sim: serves Prometheus metrics as if real HTTP traffic flowed
//! through the cluster's Services and HTTPRoutes. See `signalman_e2e::sim`
//! for the traffic conventions.
//!
//! Environment:
//! - `KUBECONFIG` (or in-cluster config): the cluster to watch;
//! - `SIM_LISTEN` (default `127.0.0.1:${SIM_PORT:-9464}`): address of `/metrics`;
//! - `SIM_TICK_MS` (default 200): how often the counters advance.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use signalman_e2e::sim::{self, BackendRef, Metrics, PodInfo, RouteInfo, ServiceInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn httproute_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

/// Keep a reflector store up to date forever, logging (not failing) on errors,
/// e.g. while the HTTPRoute CRD is not installed yet.
fn run_reflector<K>(
    what: &'static str,
    api: Api<K>,
    writer: reflector::store::Writer<K>,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    tokio::spawn(async move {
        let mut last_error = String::new();
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        );
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                let msg = e.to_string();
                if msg != last_error {
                    eprintln!("traffic-sim: watching {what}: {msg} (retrying)");
                    last_error = msg;
                }
            }
        }
    })
}

fn pod_info(p: &Pod) -> PodInfo {
    let spec = p.spec.clone().unwrap_or_default();
    let env_value = |name: &str| {
        spec.containers
            .iter()
            .flat_map(|c| c.env.iter().flatten())
            .find(|e| e.name == name)
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let ready = p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let labels = p.labels().clone();
    let track = if labels.get(sim::TRACK_LABEL).map(String::as_str) == Some("canary") {
        "canary"
    } else {
        "stable"
    };
    PodInfo {
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
        ready,
        track: track.to_string(),
        version: spec
            .containers
            .first()
            .and_then(|c| c.image.as_deref())
            .map(sim::image_tag)
            .unwrap_or_else(|| "unknown".to_string()),
        error_rate: env_value(sim::ERROR_RATE_ENV)
            .unwrap_or(0.0)
            .clamp(0.0, 1.0),
        latency_ms: env_value(sim::LATENCY_ENV)
            .unwrap_or(sim::DEFAULT_LATENCY_MS)
            .max(0.0),
        labels,
    }
}

fn service_info(s: &Service) -> ServiceInfo {
    let selector = s
        .spec
        .as_ref()
        .and_then(|sp| sp.selector.clone())
        .filter(|sel: &BTreeMap<String, String>| !sel.is_empty());
    ServiceInfo {
        namespace: s.namespace().unwrap_or_default(),
        name: s.name_any(),
        selector,
        rps: sim::parse_rps(s.annotations().get(sim::RPS_ANNOTATION)),
        canary_of: s.labels().get(sim::CANARY_OF_LABEL).cloned(),
    }
}

fn route_info(r: &DynamicObject) -> RouteInfo {
    let namespace = r.namespace().unwrap_or_default();
    let rules = r.data["spec"]["rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|rule| {
                    rule["backendRefs"]
                        .as_array()
                        .map(|refs| {
                            refs.iter()
                                .filter(|b| {
                                    let group = b["group"].as_str().unwrap_or("");
                                    let kind = b["kind"].as_str().unwrap_or("Service");
                                    group.is_empty() && kind == "Service"
                                })
                                .filter_map(|b| {
                                    Some(BackendRef {
                                        namespace: b["namespace"]
                                            .as_str()
                                            .unwrap_or(&namespace)
                                            .to_string(),
                                        service: b["name"].as_str()?.to_string(),
                                        weight: b["weight"]
                                            .as_u64()
                                            .unwrap_or(1)
                                            .min(u64::from(u32::MAX))
                                            as u32,
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    RouteInfo {
        namespace: namespace.clone(),
        name: r.name_any(),
        rps: sim::parse_rps(r.annotations().get(sim::RPS_ANNOTATION)),
        rules,
    }
}

async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Mutex<Metrics>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut len = 0;
            // Read the request head (we ignore any body).
            while len < buf.len() {
                match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf[len..])).await
                {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => {
                        len += n;
                        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (status, ctype, body) = match path.split('?').next().unwrap_or("/") {
                "/metrics" => (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    metrics.lock().unwrap().render(),
                ),
                "/healthz" | "/readyz" => ("200 OK", "text/plain", "ok\n".to_string()),
                _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    signalman_e2e::install_crypto_provider();
    let listen = std::env::var("SIM_LISTEN").unwrap_or_else(|_| {
        format!(
            "127.0.0.1:{}",
            std::env::var("SIM_PORT").unwrap_or_else(|_| "9464".into())
        )
    });
    let tick = Duration::from_millis(
        std::env::var("SIM_TICK_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200),
    );
    let client = Client::try_default()
        .await
        .context("connecting to the cluster (KUBECONFIG)")?;

    let (services, w) = reflector::store::<Service>();
    run_reflector("services", Api::<Service>::all(client.clone()), w);
    let (pods, w) = reflector::store::<Pod>();
    run_reflector("pods", Api::<Pod>::all(client.clone()), w);
    let ar = httproute_resource();
    let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
    let routes: Store<DynamicObject> = writer.as_reader();
    run_reflector(
        "httproutes",
        Api::<DynamicObject>::all_with(client.clone(), &ar),
        writer,
    );

    let metrics = Arc::new(Mutex::new(Metrics::default()));
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    eprintln!("traffic-sim: serving http://{listen}/metrics, tick {tick:?}");
    tokio::spawn(serve(listener, metrics.clone()));

    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    let mut shutdown = Box::pin(tokio::signal::ctrl_c());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = &mut shutdown => break,
            _ = term.recv() => break,
        }
        let now = Instant::now();
        let dt = now.duration_since(last).as_secs_f64();
        last = now;
        let svcs: Vec<ServiceInfo> = services.state().iter().map(|s| service_info(s)).collect();
        let rts: Vec<RouteInfo> = routes.state().iter().map(|r| route_info(r)).collect();
        let pds: Vec<PodInfo> = pods.state().iter().map(|p| pod_info(p)).collect();
        let flows = sim::compute_flows(&svcs, &rts, &pds);
        metrics.lock().unwrap().tick(&flows, dt);
    }
    eprintln!("traffic-sim: shutting down");
    Ok(())
}
