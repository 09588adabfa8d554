//! The CRD's schema and CEL rules and `api::validate` are two statements of
//! one contract: `kubectl signalman plan` promises offline what the API
//! server will say. Generated Release specs, most of them valid and the rest
//! broken at one edge (blank owner, steps not increasing or not ending at
//! 100, bakes under 1s, duplicate names, self-dependency, metrics without
//! bounds or with min > max, names off the pattern, lengths at and over the
//! limits, no metrics and no opt-out, Prometheus addresses that are no
//! usable URL, images with Unicode white space around them; a risk below its
//! changes' classes, gates without bounds or of both kinds, windows from
//! after to or in an unknown time zone, a blank override justification, an
//! unmeasured hotfix; a comparison with a fixed bound on the same side, with
//! no bound, with a ratio not above 0 or a negative difference; a
//! verification with a bake under 1s, without metrics, opted out or
//! comparing), go to the real API server as
//! server-side dry-run creates; "accepted" must equal "validate() found
//! nothing". The schema is the CRD this tree generates (`Release::crd()`,
//! what `signalman crd` prints into `crds/`), installed under a group of its
//! own so concurrent runs that install theirs cannot change it mid-test.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use signalman_core::api::{
    Analysis, Change, ChangeClass, Compare, Defaults, Duration, Gate, GatewayApiTraffic, Metric,
    NoDataPolicy, PrometheusSpec, Release, ReleaseSpec, ReleaseType, Risk, ServiceSpec,
    SkipAnalysis, Step, Traffic, Verify, Weekday, Window, WindowOverride, validate,
};
use signalman_e2e::{self as e2e, TestNamespace, operator};

/// Enough to meet every edge several times and stay well under a minute
/// (a dry-run create takes a few milliseconds on the local control plane).
const CASES: u32 = 400;

fn dur(s: &str) -> Duration {
    s.parse().unwrap()
}

/// Mostly `good`, sometimes one of `bad`: a spec is valid often enough that
/// both answers are exercised, and broken in one place when it is not.
fn mostly<T: Clone + std::fmt::Debug + 'static>(good: T, bad: Vec<T>) -> BoxedStrategy<T> {
    let bad = proptest::sample::select(bad);
    prop_oneof![24 => Just(good), 1 => bad].boxed()
}

/// As [`mostly`], at half its odds: for the go/no-go fields, so that with
/// the older edges enough specs stay valid to prove the accepting side.
fn rarely<T: Clone + std::fmt::Debug + 'static>(good: T, bad: Vec<T>) -> BoxedStrategy<T> {
    let bad = proptest::sample::select(bad);
    prop_oneof![49 => Just(good), 1 => bad].boxed()
}

fn name_like(good: &str, extra: &[&str]) -> BoxedStrategy<String> {
    let mut bad: Vec<String> = vec![
        String::new(),
        "Web".into(),
        "-a".into(),
        "a-".into(),
        "a_b".into(),
        "x".repeat(63),
        "x".repeat(64),
    ];
    bad.extend(extra.iter().map(|s| (*s).to_owned()));
    mostly(good.to_owned(), bad)
}

fn step() -> impl Strategy<Value = (i32, Duration)> {
    (
        mostly(50, vec![0, 1, 100, 101, -5]),
        mostly(
            dur("30s"),
            vec![dur("0s"), dur("999ms"), dur("1s"), dur("-1s")],
        ),
    )
}

fn steps() -> BoxedStrategy<Vec<Step>> {
    let to_steps = |v: Vec<(i32, Duration)>| {
        v.into_iter()
            .map(|(weight, bake)| Step {
                weight,
                bake,
                approval: None,
            })
            .collect::<Vec<_>>()
    };
    // A sound ladder with one rung possibly broken, or a ladder of a given length.
    let ladder = (step(), mostly(100, vec![99, 50, 10])).prop_map(move |((w, b), last)| {
        let first = if w == 50 { 10 } else { w };
        to_steps(vec![(first, b), (50, dur("1m")), (last, dur("1m"))])
    });
    let sized = proptest::sample::select(vec![0usize, 1, 2, 20, 21]).prop_map(move |n| {
        let mut v: Vec<(i32, Duration)> = (1..n as i32).map(|w| (w, dur("1s"))).collect();
        if n > 0 {
            v.push((100, dur("1s")));
        }
        to_steps(v)
    });
    prop_oneof![6 => ladder, 1 => sized].boxed()
}

fn compare(
    max_increase: Option<f64>,
    max_ratio: Option<f64>,
    max_decrease: Option<f64>,
    min_ratio: Option<f64>,
) -> Option<Compare> {
    Some(Compare {
        max_increase,
        max_ratio,
        max_decrease,
        min_ratio,
    })
}

/// Mostly no comparison; else a sound one on either side, or one broken at an edge.
fn comparison() -> BoxedStrategy<Option<Compare>> {
    prop_oneof![
        6 => Just(None),
        1 => proptest::sample::select(vec![
            compare(Some(0.005), None, None, None),
            compare(Some(0.0), Some(1.2), None, None),
            compare(None, None, Some(0.01), Some(0.9)),
            compare(Some(0.005), None, None, Some(0.5)),
            compare(None, None, None, None),
            compare(None, Some(0.0), None, None),
            compare(None, Some(-1.2), None, None),
            compare(None, None, None, Some(0.0)),
            compare(Some(-0.005), None, None, None),
            compare(None, None, Some(-0.01), None),
        ]),
    ]
    .boxed()
}

/// `query` with `{{track}}` in a selector, at the same length: a compare
/// metric's query must name the track (a rule of validate alone, as are
/// placeholders, which the API server cannot afford to check), so it always
/// does here and the length edges stay where they were.
fn with_track(query: String) -> String {
    const TRACK: &str = "{ {{track}} }";
    match query.as_str() {
        "sum(rate(errors_total[1m]))" => "sum(rate(errors_total{ {{track}} }[1m]))".to_owned(),
        q if q.trim().is_empty() || q.len() < TRACK.len() => query,
        q => format!("{}{TRACK}", &q[..q.len() - TRACK.len()]),
    }
}

fn metric() -> impl Strategy<Value = Metric> {
    (
        name_like("error-rate", &["m"]),
        mostly(
            "sum(rate(errors_total[1m]))".to_owned(),
            vec![
                String::new(),
                " ".into(),
                "\t".into(),
                "q".repeat(4096),
                "q".repeat(4097),
            ],
        ),
        mostly(
            (None, Some(0.01)),
            vec![
                (None, None),
                (Some(0.5), Some(0.1)),
                (Some(0.1), Some(0.1)),
                (Some(-1.0), None),
            ],
        ),
        comparison(),
    )
        .prop_map(|(name, query, (min, max), compare)| {
            // With a comparison the fixed bound is often left out (else the
            // upper side is bounded twice), and sometimes kept to prove that edge.
            let (min, max) = match &compare {
                Some(_) if name.len() % 2 == 0 => (min, None),
                _ => (min, max),
            };
            let query = if compare.is_some() {
                with_track(query)
            } else {
                query
            };
            Metric {
                name,
                query,
                min,
                max,
                compare,
            }
        })
}

fn metrics() -> BoxedStrategy<Vec<Metric>> {
    let many = proptest::sample::select(vec![20usize, 21]).prop_map(|n| {
        (0..n)
            .map(|i| Metric {
                name: format!("m{i}"),
                query: "up".into(),
                min: Some(1.0),
                max: None,
                compare: None,
            })
            .collect()
    });
    prop_oneof![
        10 => proptest::collection::vec(metric(), 1..=2),
        2 => Just(Vec::new()),
        1 => many,
    ]
    .boxed()
}

fn skip() -> BoxedStrategy<Option<SkipAnalysis>> {
    let reason = mostly(
        "batch worker, no traffic".to_owned(),
        vec![String::new(), "  ".into(), "r".repeat(512), "r".repeat(513)],
    );
    prop_oneof![1 => Just(None), 6 => reason.prop_map(|reason| Some(SkipAnalysis { reason }))]
        .boxed()
}

fn analysis() -> impl Strategy<Value = Analysis> {
    (
        mostly(
            Some(dur("30s")),
            vec![None, Some(dur("0s")), Some(dur("1s")), Some(dur("500ms"))],
        ),
        mostly(None, vec![Some(-1), Some(0), Some(3)]),
        mostly(None, vec![Some(-1), Some(0)]),
        mostly(None, vec![Some(-1), Some(2)]),
        mostly(None, vec![Some(0), Some(1), Some(4)]),
        mostly(
            None,
            vec![Some(NoDataPolicy::Fail), Some(NoDataPolicy::Pass)],
        ),
        prop_oneof![
            8 => metrics().prop_map(|m| (m, None)),
            2 => skip().prop_map(|s| (Vec::new(), s)),
            1 => (metrics(), skip()),
        ],
    )
        .prop_map(
            |(
                interval,
                failure_limit,
                inconclusive_limit,
                error_limit,
                min_passes,
                no_data,
                (metrics, skip_analysis),
            )| {
                Analysis {
                    interval,
                    failure_limit,
                    inconclusive_limit,
                    error_limit,
                    min_passes,
                    no_data,
                    metrics,
                    skip_analysis,
                }
            },
        )
}

fn change() -> BoxedStrategy<Change> {
    let images: BTreeMap<String, String> =
        [("app".to_owned(), "registry.example/web:v2".to_owned())].into();
    let env: BTreeMap<String, BTreeMap<String, String>> = [(
        "app".to_owned(),
        [("MODE".to_owned(), "fast".to_owned())].into(),
    )]
    .into();
    mostly(
        Change {
            images: images.clone(),
            ..Default::default()
        },
        vec![
            Change::default(),
            Change {
                env,
                ..Default::default()
            },
            Change {
                images: [("app".to_owned(), String::new())].into(),
                ..Default::default()
            },
            Change {
                images: [("app".to_owned(), " web:v2".to_owned())].into(),
                ..Default::default()
            },
            // Unicode white space the API server trims from a pod's image.
            Change {
                images: [("app".to_owned(), "\u{a0}web:v2".to_owned())].into(),
                ..Default::default()
            },
            Change {
                images: [("app".to_owned(), "web:v2\u{2003}".to_owned())].into(),
                ..Default::default()
            },
            Change {
                images: [("app".to_owned(), "\u{b}web:v2".to_owned())].into(),
                ..Default::default()
            },
            Change {
                images: [("app".to_owned(), "web v2".to_owned())].into(),
                ..Default::default()
            },
        ],
    )
}

fn traffic() -> BoxedStrategy<Option<Traffic>> {
    let gateway = (
        mostly(
            "shop".to_owned(),
            vec![String::new(), "r".repeat(253), "r".repeat(254)],
        ),
        mostly(
            None,
            vec![
                Some("web-stable".to_owned()),
                Some(String::new()),
                Some("Web_Stable".into()),
                Some("s".repeat(64)),
                // The canary Service <service>-canary must fit in 63.
                Some("s".repeat(56)),
                Some("s".repeat(57)),
            ],
        ),
    )
        .prop_map(|(http_route, service)| {
            Some(Traffic {
                gateway_api: Some(GatewayApiTraffic {
                    http_route,
                    service,
                }),
            })
        });
    prop_oneof![3 => Just(None), 1 => gateway].boxed()
}

fn service() -> impl Strategy<Value = ServiceSpec> {
    (
        proptest::sample::select(vec!["a", "b", "c"]),
        name_like("ok", &[]),
        mostly(
            "web".to_owned(),
            vec![
                String::new(),
                // The canary Deployment <deployment>-canary must fit in 253.
                "d".repeat(246),
                "d".repeat(247),
                // Shared by every service that draws it: one Deployment, two services.
                "shared".into(),
            ],
        ),
        change(),
        proptest::collection::vec(
            proptest::sample::select(vec!["a", "b", "c", "ghost"]),
            0..=2,
        ),
        traffic(),
        prop_oneof![4 => Just(None), 1 => steps().prop_map(Some)],
        prop_oneof![3 => Just(None), 2 => analysis().prop_map(Some)],
        mostly(None, vec![Some(" ".to_owned()), Some("team-web".into())]),
    )
        .prop_map(
            |(base, naming, deployment, change, deps, traffic, steps, analysis, owner)| {
                // Most names are a plain a/b/c; some carry the name-pattern edge.
                let name = if naming == "ok" {
                    base.to_owned()
                } else {
                    naming
                };
                ServiceSpec {
                    depends_on: deps.into_iter().map(str::to_owned).collect(),
                    name,
                    owner,
                    deployment,
                    change,
                    traffic,
                    steps,
                    analysis,
                    ..Default::default()
                }
            },
        )
}

fn services() -> BoxedStrategy<Vec<ServiceSpec>> {
    let many = proptest::sample::select(vec![100usize, 101]).prop_map(|n| {
        (0..n)
            .map(|i| ServiceSpec {
                name: format!("s{i}"),
                owner: None,
                deployment: format!("d{i}"),
                change: Change {
                    images: [("app".to_owned(), "x:v2".to_owned())].into(),
                    ..Default::default()
                },
                depends_on: vec![],
                traffic: None,
                steps: None,
                analysis: None,
                ..Default::default()
            })
            .collect()
    });
    // Names are made unique and self-dependencies removed, except in the
    // cases that keep them on purpose.
    let few = (
        proptest::collection::vec(service(), 1..=3),
        mostly(true, vec![false]),
    )
        .prop_map(|(mut v, tidy)| {
            if tidy {
                let names = ["a", "b", "c"];
                for (i, svc) in v.iter_mut().enumerate() {
                    if ["a", "b", "c"].contains(&svc.name.as_str()) {
                        svc.name = names[i].to_owned();
                    }
                    let own = svc.name.clone();
                    svc.depends_on.retain(|d| *d != own);
                    // Each its own Deployment, but for the edge cases.
                    if svc.deployment == "web" {
                        svc.deployment = format!("web-{i}");
                    }
                }
            }
            v
        });
    prop_oneof![
        20 => few,
        1 => Just(Vec::new()),
        1 => many,
    ]
    .boxed()
}

fn gate(name: &str, query: Option<&str>, min: Option<f64>, max: Option<f64>) -> Gate {
    Gate {
        name: name.into(),
        query: query.map(Into::into),
        min,
        max,
        interval: None,
        approval: query.is_none().then_some(true),
    }
}

fn gates() -> BoxedStrategy<Vec<Gate>> {
    let alerts = "sum(ALERTS{alertstate=\"firing\",namespace=\"{{namespace}}\"}) or vector(0)";
    let good = vec![
        gate("no-alerts", Some(alerts), None, Some(0.0)),
        gate("change-board", None, None, None),
    ];
    let mut both = gate("both", Some("up"), Some(1.0), None);
    both.approval = Some(true);
    rarely(
        Vec::new(),
        vec![
            good.clone(),
            vec![gate("no-bounds", Some("up"), None, None)],
            vec![gate("upside-down", Some("up"), Some(2.0), Some(1.0))],
            vec![both],
            vec![gate("Bad_Name", None, None, None)],
            vec![gate("blank", Some(" "), Some(1.0), None)],
            vec![good[1].clone(), good[1].clone()],
        ],
    )
}

fn window(days: Vec<Weekday>, from: &str, to: &str, zone: Option<&str>) -> Window {
    Window {
        days,
        from: from.into(),
        to: to.into(),
        time_zone: zone.map(Into::into),
    }
}

fn windows() -> BoxedStrategy<Option<Window>> {
    let week = vec![Weekday::Monday, Weekday::Tuesday, Weekday::Thursday];
    rarely(
        None,
        vec![
            Some(window(
                week.clone(),
                "09:00",
                "17:00",
                Some("Europe/Berlin"),
            )),
            Some(window(week.clone(), "00:00", "24:00", None)),
            Some(window(week.clone(), "17:00", "09:00", Some("UTC"))),
            Some(window(week.clone(), "09:00", "09:00", Some("UTC"))),
            Some(window(week.clone(), "09:00", "17:00", Some("Mars/Base"))),
            Some(window(week.clone(), "9:00", "17:00", None)),
            Some(window(week.clone(), "09:00", "24:01", None)),
            Some(window(Vec::new(), "09:00", "17:00", None)),
            Some(window(
                vec![Weekday::Monday, Weekday::Monday],
                "09:00",
                "17:00",
                None,
            )),
        ],
    )
}

/// Risk, type, and the class of the first service's change.
fn go_no_go() -> impl Strategy<Value = (Option<Risk>, Option<ReleaseType>, Option<ChangeClass>)> {
    (
        rarely(
            None,
            vec![
                Some(Risk::Auto),
                Some(Risk::Low),
                Some(Risk::Medium),
                Some(Risk::High),
            ],
        ),
        rarely(
            None,
            vec![Some(ReleaseType::Hotfix), Some(ReleaseType::Normal)],
        ),
        rarely(
            None,
            vec![
                Some(ChangeClass::Copy),
                Some(ChangeClass::Config),
                Some(ChangeClass::Feature),
                Some(ChangeClass::Payment),
                Some(ChangeClass::Auth),
            ],
        ),
    )
}

fn verify_metric(max: Option<f64>, compare: Option<Compare>) -> Metric {
    Metric {
        name: "checkout-success".into(),
        query:
            "sum(rate(checkouts_total{namespace=\"{{namespace}}\",release=\"{{release}}\"}[5m]))"
                .into(),
        min: None,
        max,
        compare,
    }
}

fn verification(bake: &str, metrics: Vec<Metric>, skip: bool) -> Option<Verify> {
    Some(Verify {
        bake: dur(bake),
        analysis: Analysis {
            interval: Some(dur("30s")),
            metrics,
            skip_analysis: skip.then(|| SkipAnalysis {
                reason: "nothing to watch".into(),
            }),
            ..Analysis::default()
        },
    })
}

/// Mostly none; else a sound verification, or one broken at an edge: a bake
/// under 1s, no metrics, an opt-out, a comparison (nothing is left to compare
/// with), a metric without bounds.
fn verify() -> BoxedStrategy<Option<Verify>> {
    let good = verify_metric(Some(1.0), None);
    rarely(
        None,
        vec![
            verification("10m", vec![good.clone()], false),
            verification("1s", vec![good.clone()], false),
            verification("999ms", vec![good.clone()], false),
            verification("0s", vec![good.clone()], false),
            verification("10m", Vec::new(), false),
            verification("10m", Vec::new(), true),
            verification("10m", vec![good.clone()], true),
            verification(
                "10m",
                vec![verify_metric(None, compare(Some(0.005), None, None, None))],
                false,
            ),
            verification("10m", vec![verify_metric(None, None)], false),
        ],
    )
}

fn spec() -> impl Strategy<Value = ReleaseSpec> {
    (
        mostly(
            "team-checkout".to_owned(),
            vec![String::new(), " ".into(), "\t \n".into()],
        ),
        mostly(
            None,
            vec![Some("a summary".to_owned()), Some(String::new())],
        ),
        mostly(
            None,
            vec![
                Some("http://prometheus:9090".to_owned()),
                Some("prometheus:9090".into()),
                Some("http://prom etheus:9090".into()),
                Some("http://prometheus:9090/a b".into()),
                Some("http://".into()),
                Some("http://[::1]:9090".into()),
                Some("http://[:::]".into()),
                Some("http://[1.2.3.4]".into()),
                Some("https://u:p%41@prometheus/x%2F".into()),
                Some("http://prometheus:65536".into()),
                Some("http://prometheus/?q=1".into()),
                Some("http://prometheus\t".into()),
                Some(format!("http://p/{}", "a".repeat(2048 - 9))),
                Some(format!("http://p/{}", "a".repeat(2048 - 8))),
            ],
        ),
        mostly(
            None,
            vec![
                Some(dur("30m")),
                Some(dur("1s")),
                Some(dur("999ms")),
                Some(dur("0s")),
            ],
        ),
        (
            prop_oneof![2 => Just(None), 1 => steps().prop_map(Some)],
            prop_oneof![1 => Just(None), 6 => analysis().prop_map(Some)],
        ),
        services(),
        mostly(None, vec![Some(true), Some(false)]),
        go_no_go(),
        (
            gates(),
            windows(),
            rarely(
                None,
                vec![
                    Some("checkout outage INC-4711".to_owned()),
                    Some(String::new()),
                    Some(" \t".to_owned()),
                ],
            ),
            rarely(None, vec![Some(dur("4h")), Some(dur("0s"))]),
            verify(),
        ),
    )
        .prop_map(
            |(
                owner,
                summary,
                prometheus,
                hold_timeout,
                (d_steps, d_analysis),
                mut services,
                paused,
                (risk, release_type, class),
                (gates, window, justification, gate_timeout, verify),
            )| {
                if let Some(first) = services.first_mut() {
                    first.change.class = class;
                }
                let defaults = (d_steps.is_some() || d_analysis.is_some()).then_some(Defaults {
                    steps: d_steps,
                    analysis: d_analysis,
                });
                ReleaseSpec {
                    owner,
                    summary,
                    prometheus: prometheus.map(|address| PrometheusSpec { address }),
                    defaults,
                    services,
                    paused,
                    abort: None,
                    resume_hold: None,
                    hold_timeout,
                    risk,
                    release_type,
                    gates,
                    gate_timeout,
                    window,
                    window_override: justification
                        .map(|justification| WindowOverride { justification }),
                    verify,
                    ..ReleaseSpec::default()
                }
            },
        )
}

/// The Release CRD's API group is cluster-wide and other test runs keep
/// installing their own version of it; measuring this tree's rules needs a
/// copy nobody else writes. Same schema and CEL rules, byte for byte, under a
/// group of its own.
const GROUP: &str = "crd-agreement.signalman.dev";

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1alpha1", "Release"),
        "releases",
    )
}

async fn install_private_crd(client: &kube::Client) {
    let mut crd = Release::crd();
    crd.metadata.name = Some(format!("releases.{GROUP}"));
    crd.spec.group = GROUP.to_owned();
    // Short names and categories would shadow the real ones in kubectl.
    crd.spec.names.short_names = None;
    crd.spec.names.categories = None;
    operator::apply_crd(client, &crd).await;
    e2e::wait_for(
        "the private Release CRD to be served",
        StdDuration::from_secs(30),
        || {
            let client = client.clone();
            async move {
                let api: Api<DynamicObject> = Api::all_with(client, &resource());
                Ok(api.list(&Default::default()).await.ok().map(|_| ()))
            }
        },
    )
    .await;
}

async fn delete_private_crd(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let _ = api
        .delete(&format!("releases.{GROUP}"), &Default::default())
        .await;
}

/// `Ok(None)` accepted; `Ok(Some(message))` refused as invalid (422).
async fn dry_run(
    api: &Api<DynamicObject>,
    spec: &ReleaseSpec,
) -> Result<Option<String>, kube::Error> {
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut obj = DynamicObject::new("agreement", &resource());
    obj.data = serde_json::json!({ "spec": spec });
    match api.create(&params, &obj).await {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 422 => Ok(Some(s.message)),
        Err(e) => Err(e),
    }
}

#[test]
fn the_api_server_and_validate_accept_exactly_the_same_specs() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (client, ns) = rt.block_on(async {
        let client = e2e::client().await;
        install_private_crd(&client).await;
        let ns = TestNamespace::create(&client, "crd-agreement").await;
        (client, ns)
    });
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns.name(), &resource());

    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    });
    let (accepted, refused) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let started = std::time::Instant::now();
    let result = runner.run(&spec(), |spec| {
        let server = rt
            .block_on(dry_run(&api, &spec))
            .map_err(|e| TestCaseError::fail(format!("the API server did not answer: {e}")))?;
        let problems = validate(&spec);
        if server.is_none() == problems.is_empty() {
            let count = if server.is_none() {
                &accepted
            } else {
                &refused
            };
            count.set(count.get() + 1);
            return Ok(());
        }
        Err(TestCaseError::fail(format!(
            "disagreement\n  spec: {}\n  API server: {}\n  validate: {:?}",
            serde_json::to_string(&spec).unwrap_or_default(),
            server.as_deref().unwrap_or("accepted"),
            problems.iter().map(ToString::to_string).collect::<Vec<_>>()
        )))
    });
    let (accepted, refused) = (accepted.get(), refused.get());
    eprintln!(
        "{accepted} accepted and {refused} refused by both, in {:?}",
        started.elapsed()
    );
    rt.block_on(async {
        ns.delete().await;
        delete_private_crd(&client).await;
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, spec)) => panic!(
            "{why}\nminimal spec: {}",
            serde_json::to_string_pretty(&spec).unwrap_or_default()
        ),
        Err(e) => panic!("{e}"),
    }
    // Both answers must really have been exercised.
    assert!(
        accepted >= CASES / 10,
        "only {accepted} of {CASES} specs were valid"
    );
    assert!(
        refused >= CASES / 10,
        "only {refused} of {CASES} specs were invalid"
    );
}
