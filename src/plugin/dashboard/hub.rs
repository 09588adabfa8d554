//! The one watch behind every open page: a reflector over the Releases the
//! dashboard shows (one namespace, or all with `-A`), and a broadcast of what
//! changed. Pages read the store and never reach the API server themselves,
//! so ten open tabs cost the cluster what one does.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::broadcast;

use crate::api::Release;

/// What changed: one Release, or possibly all of them (the watch restarted,
/// or a page fell behind and must redraw from the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    One { namespace: String, name: String },
    All,
}

impl Change {
    /// Whether a page showing `namespace/name` must redraw.
    pub fn concerns(&self, namespace: &str, name: &str) -> bool {
        match self {
            Change::All => true,
            Change::One {
                namespace: n,
                name: m,
            } => n == namespace && m == name,
        }
    }
}

#[derive(Clone)]
pub struct Hub {
    pub store: Store<Release>,
    changes: broadcast::Sender<Change>,
    /// Why the watch is failing, while it is (shown on every page).
    trouble: Arc<Mutex<Option<String>>>,
}

impl Hub {
    /// Start the watch of `namespace` (every namespace when `None`).
    pub fn start(client: kube::Client, namespace: Option<&str>) -> Hub {
        let api: Api<Release> = match namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        };
        let (store, writer) = reflector::store();
        // Room for a burst of status writes across many trains; a page that
        // still falls behind redraws from the store (`Change::All`).
        let (changes, _) = broadcast::channel(1024);
        let hub = Hub {
            store,
            changes: changes.clone(),
            trouble: Arc::new(Mutex::new(None)),
        };
        let trouble = hub.trouble.clone();
        let events = watcher(api, watcher::Config::default())
            .default_backoff()
            // Field ownership is bulk no view reads.
            .modify(|r: &mut Release| r.managed_fields_mut().clear());
        let mut events = reflector::reflector(writer, events).boxed();
        tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                let change = match ev {
                    Ok(watcher::Event::Apply(r) | watcher::Event::Delete(r)) => Change::One {
                        namespace: r.namespace().unwrap_or_default(),
                        name: r.name_any(),
                    },
                    Ok(watcher::Event::InitDone) => Change::All,
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
                    Err(e) => {
                        *trouble.lock().expect("not poisoned") =
                            Some(format!("the watch of Releases failed, retrying: {e}"));
                        let _ = changes.send(Change::All);
                        continue;
                    }
                };
                if trouble.lock().expect("not poisoned").take().is_some() {
                    let _ = changes.send(Change::All);
                }
                // No page open is not an error.
                let _ = changes.send(change);
            }
        });
        hub
    }

    /// A hub over a fixed set of Releases, filled in-process: what the
    /// benchmark and the tests serve, with no cluster behind it.
    pub fn from_releases(releases: impl IntoIterator<Item = Release>) -> Hub {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for r in releases {
            writer.apply_watcher_event(&watcher::Event::InitApply(r));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let (changes, _) = broadcast::channel(16);
        // The sender is kept by the hub, so the pages' streams stay open.
        Hub {
            store,
            changes,
            trouble: Arc::new(Mutex::new(None)),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub fn trouble(&self) -> Option<String> {
        self.trouble.lock().expect("not poisoned").clone()
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Release>> {
        self.store.get(&ObjectRef::new(name).within(namespace))
    }
}
