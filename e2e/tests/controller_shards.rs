//! Issue 11, beyond one replica: two operator shards, each taking the
//! namespaces its `--namespace-selector` matches and holding its own Lease.
//! Each shard's Releases progress, a namespace labelled after the shards
//! started is taken by the shard it now matches, and neither shard
//! reconciles, writes to, or publishes Events about the other's Releases.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use signalman_e2e::operator::{Launch, Operator};
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, TestNamespace};

const LEASE_DURATION: Duration = Duration::from_secs(6);

async fn label(client: &kube::Client, ns: &str, key: &str, value: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
    api.patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("labelling namespace {ns}: {e}"));
}

/// A two-service train that needs no metrics, applied in `ns`.
async fn train(client: &kube::Client, ns: &str) -> Api<signalman::api::Release> {
    e2e::deploy_apps(client, ns, &["web", "api"]).await;
    let api = rel::releases(client, ns);
    let r = release("train")
        .services(["web", "api"].map(|n| {
            svc(n)
                .steps(&[(50, 1), (100, 1)])
                .unmeasured("the test is about which shard moves it")
        }))
        .build();
    e2e::apply(&api, &r).await;
    api
}

/// The shard's `Launch`: its selector, its own Lease in its home namespace.
fn shard(home: &str, name: &str, selector: &str) -> Launch {
    Operator::launch(home)
        .name(name)
        .namespace_selector(selector)
        .leader_election(name, LEASE_DURATION)
}

/// Who published the Events about `train` in `ns`.
async fn reporters(client: &kube::Client, ns: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut who: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("listing events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("train"))
        .map(|e| e.reporting_instance.unwrap_or_default())
        .collect();
    who.sort();
    who.dedup();
    who
}

#[tokio::test]
async fn two_shards_each_take_their_own_namespaces() {
    let client = e2e::client().await;
    // A key of this run only, so namespaces of other tests never match.
    let home_a = TestNamespace::create(&client, "shard-a").await;
    // (Not the namespace's name: each shard logs its selector.)
    let run = home_a.name().rsplit('-').next().unwrap_or_default();
    let key = format!("e2e.signalman.dev/shards-{run}");
    let home_b = TestNamespace::create(&client, "shard-b").await;
    label(&client, home_a.name(), &key, "a").await;
    label(&client, home_b.name(), &key, "b").await;

    let a = shard(home_a.name(), "shard-a", &format!("{key}=a"))
        .start()
        .await;
    let b = shard(home_b.name(), "shard-b", &format!("{key}=b"))
        .start()
        .await;
    a.wait_ready(Duration::from_secs(30)).await;
    b.wait_ready(Duration::from_secs(30)).await;

    let in_a = train(&client, home_a.name()).await;
    let in_b = train(&client, home_b.name()).await;
    // Labelled only now: the shard must notice the namespace joining it.
    let late = TestNamespace::create(&client, "shard-late").await;
    let in_late = train(&client, late.name()).await;
    label(&client, late.name(), &key, "a").await;

    for (api, ns) in [
        (&in_a, home_a.name()),
        (&in_b, home_b.name()),
        (&in_late, late.name()),
    ] {
        let done = rel::wait_phase(api, "train", "Succeeded", Duration::from_secs(90)).await;
        eprintln!("{ns}: {:?}", rel::timeline(&done));
    }

    for (ns, want) in [
        (home_a.name(), "shard-a"),
        (home_b.name(), "shard-b"),
        (late.name(), "shard-a"),
    ] {
        let who = e2e::wait_for(
            &format!("the Succeeded Event in {ns}"),
            Duration::from_secs(10),
            || async {
                let who = reporters(&client, ns).await;
                Ok((!who.is_empty()).then_some(who))
            },
        )
        .await;
        assert_eq!(who, vec![want.to_string()], "Events about {ns}/train");
    }

    // Each shard holds its own Lease.
    for (ns, lease) in [(home_a.name(), "shard-a"), (home_b.name(), "shard-b")] {
        let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
        let holder = leases
            .get(lease)
            .await
            .expect("the shard's Lease")
            .spec
            .and_then(|s| s.holder_identity);
        assert_eq!(holder.as_deref(), Some(lease));
    }

    // Neither shard so much as reconciled a Release of the other's.
    let log_a = std::fs::read_to_string(a.log_path()).unwrap();
    let log_b = std::fs::read_to_string(b.log_path()).unwrap();
    assert!(
        !log_a.contains(home_b.name()),
        "shard a touched {}:\n{}",
        home_b.name(),
        a.log_tail()
    );
    for ns in [home_a.name(), late.name()] {
        assert!(
            !log_b.contains(ns),
            "shard b touched {ns}:\n{}",
            b.log_tail()
        );
    }
    assert!(
        log_a.contains(late.name()),
        "shard a never took {}",
        late.name()
    );

    drop((a, b));
    late.delete().await;
    home_a.delete().await;
    home_b.delete().await;
}
