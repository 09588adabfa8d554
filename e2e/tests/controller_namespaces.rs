//! Issue 11: `--namespace` takes a list. One operator watching two
//! namespaces (one watch per namespace and kind, merged into one store per
//! kind) runs a Release in each, and `/readyz` waited for both.

use std::time::Duration;

use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{Scenario, TestNamespace, WebApp};

#[tokio::test]
async fn one_operator_runs_the_releases_of_each_namespace_it_is_given() {
    let client = signalman_e2e::client().await;
    let other = TestNamespace::create(&client, "ctl-ns-other").await;
    let other_name = other.name().to_owned();
    let sc = Scenario::start_with("ctl-ns", |l| l.also_watch(&other_name)).await;
    let train = |name: &str| {
        release(name)
            .defaults(&[(50, 1), (100, 1)])
            .service(svc("a").unmeasured("e2e: released on bake time"))
            .build()
    };
    for ns in [sc.ns(), other.name()] {
        signalman_e2e::deploy(&client, ns, &[WebApp::new("a").replicas(1)]).await;
        rel::apply(&client, ns, &train("train")).await;
    }
    for ns in [sc.ns(), other.name()] {
        let api = rel::releases(&client, ns);
        rel::wait_phase(&api, "train", "Succeeded", Duration::from_secs(90)).await;
    }
    sc.end().await;
    other.delete().await;
}
