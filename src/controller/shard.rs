//! A shard: one operator (with its own Lease) for the namespaces whose labels
//! match `--namespace-selector`. The namespaces are watched; whenever the set
//! that matches changes, the controller stops gracefully and starts again over
//! the new set, with fresh stores. Restarting costs one re-list of the shard's
//! namespaces, and keeps the controller itself unaware of shards: it watches a
//! fixed list of namespaces, as with `--namespace`, so memory stays bounded
//! by the shard's namespaces rather than the cluster's.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::watch as signal;

use super::{Context, controller_until, shutdown_signal, watch};
use crate::health::Readiness;

/// Why a shard's controller stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// SIGTERM or SIGINT: the process ends.
    Signal,
    /// A namespace joined or left the shard: start over the new set.
    Changed,
}

/// The probe's name for the watch of the shard's namespaces.
const NAMESPACE_WATCH: &str = "Namespace";

/// Run the shard until SIGTERM/SIGINT.
pub async fn run(base: Arc<Context>, selector: String) {
    let (tx, mut rx) = signal::channel::<Option<BTreeSet<String>>>(None);
    base.probe.expect(NAMESPACE_WATCH);
    let (store, writer) = reflector::store::<Namespace>();
    let namespaces = watch(
        Api::<Namespace>::all(base.client.clone()),
        watcher::Config::default().labels(&selector),
        NAMESPACE_WATCH.to_owned(),
        &base,
    )
    .reflect(writer)
    .for_each(move |event| {
        // The set is known once the first list is in; after that every
        // event may change it. Only a change wakes the shard.
        if matches!(event, Ok(watcher::Event::InitDone)) || tx.borrow().is_some() {
            let now: BTreeSet<String> = store.state().iter().map(|n| n.name_any()).collect();
            tx.send_if_modified(|seen| {
                let changed = seen.as_ref() != Some(&now);
                *seen = Some(now);
                changed
            });
        }
        std::future::ready(())
    });
    let watching = tokio::spawn(namespaces);

    let mut stop = Stop::Changed;
    while stop == Stop::Changed {
        let set = tokio::select! {
            set = rx.wait_for(Option::is_some) => match set {
                Ok(set) => set.clone().unwrap_or_default(),
                Err(_) => break,
            },
            () = shutdown_signal() => break,
        };
        rx.mark_unchanged();
        // Forget the watches of the last set: a namespace that left must
        // not keep the shard unready, nor its old failures fail liveness.
        base.probe.retain_watches(|name| name == NAMESPACE_WATCH);
        let why = Arc::new(OnceLock::new());
        let stopping = {
            let (why, mut rx) = (why.clone(), rx.clone());
            async move {
                let s = tokio::select! {
                    _ = rx.changed() => Stop::Changed,
                    () = shutdown_signal() => Stop::Signal,
                };
                let _ = why.set(s);
            }
        };
        if set.is_empty() {
            // No namespace matches: nothing to watch (an empty list would
            // mean every namespace), nothing to do until one does.
            tracing::info!(%selector, "no namespace matches the shard's selector");
            base.probe.set(Readiness::Ready);
            stopping.await;
        } else {
            tracing::info!(%selector, namespaces = ?set, "the shard takes these namespaces");
            // Not ready until the new set's stores have listed (the last
            // set's controller left the probe at Ready).
            base.probe.set(Readiness::Syncing);
            let ctx = Arc::new(base.for_namespaces(set.into_iter().collect()));
            controller_until(ctx, stopping).await;
        }
        stop = why.get().copied().unwrap_or(Stop::Signal);
    }
    watching.abort();
}
