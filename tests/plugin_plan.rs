//! Golden tests of `kubectl signalman plan`: the whole output (stdout, stderr,
//! exit code) for valid and invalid files, compared byte for byte with
//! `tests/fixtures/plan/*.golden`. After an intended change of the output,
//! regenerate them with `UPDATE_GOLDEN=1 cargo test --test plugin_plan` and
//! review the diff.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use signalman::api::Phase;
use signalman::plugin::read_releases;
use signalman::plugin::schedule::{cluster_problems, schedule};
use signalman::preflight::{Claimant, ClusterView, ServiceView};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan")
}

/// Run the plugin with a clean environment: no colour, no cluster, UTC.
fn plugin(args: &[&str], kubeconfig: Option<&Path>) -> (String, String, i32) {
    let home = std::env::temp_dir().join("signalman-plugin-plan-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-signalman"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .env("HOME", &home)
        .env_remove("KUBECONFIG");
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd.output().expect("running kubectl-signalman");
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code().unwrap_or(-1),
    )
}

fn golden(fixture: &str, expect_code: i32) {
    let file = format!("tests/fixtures/plan/{fixture}.yaml");
    let args = ["plan", "-f", &file, "--offline"];
    let (stdout, stderr, code) = plugin(&args, None);
    let actual = format!(
        "$ kubectl signalman {}\nexit: {code}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        args.join(" ")
    );
    let path = fixtures().join(format!("{fixture}.golden"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; create it with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        code, expect_code,
        "exit code of plan on {fixture}\n{actual}"
    );
    assert_eq!(
        actual,
        expected,
        "plan output for {fixture} differs from {}",
        path.display()
    );
}

#[test]
fn a_valid_train_prints_waves_steps_rollback_order_and_least_duration() {
    golden("shop", 0);
}

#[test]
fn plan_lists_the_gates_and_every_approval_the_train_waits_for() {
    golden("gonogo", 0);
}

#[test]
fn built_in_steps_apply_when_none_are_given() {
    golden("no-metrics", 0);
}

#[test]
fn a_service_with_nothing_to_measure_and_no_opt_out_is_refused() {
    golden("unmeasured", 1);
}

#[test]
fn every_static_problem_is_reported_with_its_field() {
    golden("invalid-fields", 1);
}

#[test]
fn an_unusable_prometheus_address_and_queries_that_give_no_number_are_refused() {
    golden("unusable-prometheus", 1);
}

#[test]
fn unknown_dependencies_are_reported_before_cycles() {
    golden("invalid-graph", 1);
}

#[test]
fn a_cycle_is_printed_as_a_path() {
    golden("invalid-cycle", 1);
}

#[test]
fn a_malformed_file_names_the_line() {
    golden("malformed", 1);
}

#[test]
fn a_file_without_a_release_says_what_a_release_looks_like() {
    golden("no-release", 1);
}

#[test]
fn a_wrong_api_version_is_refused() {
    golden("wrong-version", 1);
}

#[test]
fn the_least_duration_is_the_longest_chain_of_bakes() {
    let text = std::fs::read_to_string(fixtures().join("shop.yaml")).unwrap();
    let release = read_releases(&text).unwrap().remove(0);
    let s = schedule(&release.spec).unwrap();
    let total = |name: &str| s.services.iter().find(|x| x.name == name).unwrap().total;
    assert_eq!(total("payments-api"), Duration::from_secs(14 * 60));
    assert_eq!(total("inventory"), Duration::from_secs(2 * 60));
    // minPasses 5 at a 1m interval stretches both steps to 5m.
    assert_eq!(total("emails"), Duration::from_secs(10 * 60));
    assert_eq!(s.minimum, Duration::from_secs(28 * 60));
    assert_eq!(s.critical_path, ["payments-api", "checkout-web"]);
    assert_eq!(
        s.plan.rollback_order.first().map(String::as_str),
        Some("checkout-web")
    );
}

#[test]
fn cluster_facts_name_missing_deployments_containers_routes_and_claims() {
    let text = std::fs::read_to_string(fixtures().join("shop.yaml")).unwrap();
    let spec = read_releases(&text).unwrap().remove(0).spec;
    let seen = |containers: Option<&[&str]>, route_found| ServiceView {
        containers: containers.map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
        route_found,
        replicas: Some(20),
    };
    let at = |s| Some(jiff::Timestamp::from_second(s).unwrap());
    let view = ClusterView {
        namespace: "shop".into(),
        release: None,
        services: [
            ("payments-api".to_owned(), seen(Some(&["api"]), false)),
            (
                "inventory".to_owned(),
                seen(Some(&["app", "sidecar"]), false),
            ),
            ("checkout-web".to_owned(), seen(None, false)),
            ("emails".to_owned(), seen(Some(&["worker"]), false)),
        ]
        .into(),
        releases: vec![
            Claimant {
                name: "growth-week-48".into(),
                phase: Phase::Progressing,
                created: at(100),
                deployments: vec!["emails".into()],
                config_maps: Vec::new(),
                refused: false,
            },
            // Older and not started: it still goes first.
            Claimant {
                name: "inventory-hotfix".into(),
                phase: Phase::Pending,
                created: at(50),
                deployments: vec!["inventory".into()],
                config_maps: Vec::new(),
                refused: false,
            },
        ],
        config_maps: Default::default(),
    };
    let problems: Vec<String> = cluster_problems(&spec, &view)
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        problems,
        [
            "spec.services[0].traffic.gatewayAPI.httpRoute: HTTPRoute \"payments\" not found in namespace \"shop\", or it has no backendRef to Service \"payments-api\"; create it or fix the name",
            "spec.services[1].change.env.api: Deployment \"inventory\" has no container \"api\" (it has \"app\", \"sidecar\"); use one of those names",
            "spec.services[1].deployment: Deployment \"inventory\" is claimed by Release \"inventory-hotfix\", which was created first and has not started (Pending); it goes first: wait for it, or abort it (spec.abort: true) or delete it",
            "spec.services[2].deployment: Deployment \"checkout-web\" not found in namespace \"shop\"; create it or fix the name",
            "spec.services[3].deployment: Deployment \"emails\" is claimed by Release \"growth-week-48\", which is still in flight; wait for it or abort it",
        ]
    );
}

#[test]
fn without_a_kubeconfig_the_file_is_still_checked() {
    let (stdout, stderr, code) =
        plugin(&["plan", "-f", "tests/fixtures/plan/no-metrics.yaml"], None);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("Cluster: not checked (no kubeconfig"),
        "{stdout}"
    );
}

#[test]
fn an_unreachable_cluster_is_said_so_and_the_file_is_still_checked() {
    let dir =
        std::env::temp_dir().join(format!("signalman-plan-unreachable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    // Port 9 on localhost: nothing listens, the connection is refused at once.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"http://127.0.0.1:9\"}}]\n\
         users: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let (stdout, stderr, code) = plugin(
        &["plan", "-f", "tests/fixtures/plan/no-metrics.yaml"],
        Some(&kubeconfig),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("Cluster: not checked (the cluster at http://127.0.0.1:9 is unreachable"),
        "{stdout}"
    );
    // Commands that need the cluster fail with one sentence naming it and the fix.
    let (stdout, stderr, code) = plugin(&["get", "anything", "-n", "shop"], Some(&kubeconfig));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot reach the cluster at http://127.0.0.1:9 (context x): "),
        "{stderr}"
    );
    assert!(stderr.contains("make cluster-up"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plan_reads_stdin() {
    let text = std::fs::read_to_string(fixtures().join("invalid-cycle.yaml")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-signalman"))
        .args(["plan", "-f", "-", "--offline"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("dependency cycle: a -> c -> b -> a")
            || stdout.contains("dependency cycle:"),
        "{stdout}"
    );
}

#[test]
fn every_example_release_plans_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [root.clone(), root.join("demo")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    let mut releases = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        for r in read_releases(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            releases += 1;
            if let Err(problems) = schedule(&r.spec) {
                panic!("{}: {problems:?}", path.display());
            }
        }
    }
    assert!(
        releases >= 8,
        "found only {releases} example Releases in {files:?}"
    );
    // One commented example for each kind of member and rule of issues 13 and 14.
    for name in [
        "migration.yaml",
        "feature-flag.yaml",
        "deferred.yaml",
        "cross-team.yaml",
        "verify-compare.yaml",
    ] {
        assert!(
            files.contains(&root.join(name)),
            "examples/{name} is missing"
        );
    }
}

#[test]
fn the_examples_show_what_they_are_about() {
    let plan = |name: &str| {
        let file = format!("examples/{name}");
        let (stdout, stderr, code) = plugin(&["plan", "-f", &file, "--offline"], None);
        assert_eq!(code, 0, "{stdout}{stderr}");
        stdout
    };
    let migration = plan("migration.yaml");
    assert!(
        migration.contains("runs once: Job orders-2026-12-02-db-migration-forward (timeout 15m)"),
        "{migration}"
    );
    assert!(
        migration.contains(
            "orders-web → orders-api → db-migration (rollback Job orders-2026-12-02-db-migration-rollback)"
        ),
        "{migration}"
    );
    let flag = plan("feature-flag.yaml");
    assert!(
        flag.contains(
            "sets ConfigMap checkout-flags: checkout-v2=on, checkout-v2-rollout=all; bakes 10m"
        ),
        "{flag}"
    );
    assert!(
        flag.contains("checkout-v2 (flag, first, at once) → checkout-api"),
        "{flag}"
    );
    assert!(flag.contains("dark"), "{flag}");
    let deferred = plan("deferred.yaml");
    assert!(
        deferred.contains("held: payments-api (load test not signed off, PAY-311): deferred at the start with what depends on it: checkout-web; the rest ships"),
        "{deferred}"
    );
    let cross = plan("cross-team.yaml");
    assert!(
        cross.contains("cross-team edges  4, more than the limit 3"),
        "{cross}"
    );
    assert!(
        cross.contains("4. checkout-api, checkout-web (team-checkout)   after 2, 3"),
        "{cross}"
    );
}

#[test]
fn a_deployment_too_small_for_its_steps_is_a_warning_that_says_by_how_much() {
    let text = std::fs::read_to_string(fixtures().join("shop.yaml")).unwrap();
    let spec = read_releases(&text).unwrap().remove(0).spec;
    let mut view = ClusterView {
        namespace: "shop".into(),
        ..Default::default()
    };
    for svc in &spec.services {
        let replicas = if svc.name == "inventory" { 2 } else { 40 };
        view.services.insert(
            svc.name.clone(),
            ServiceView {
                containers: Some(vec!["app".into()]),
                route_found: true,
                replicas: Some(replicas),
            },
        );
    }
    let warnings = signalman::plugin::schedule::weight_warnings(&spec, &view);
    let inventory = spec
        .services
        .iter()
        .position(|s| s.name == "inventory")
        .unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let (field, message) = &warnings[0];
    assert_eq!(field, &format!("spec.services[{inventory}]"));
    assert!(
        message.starts_with("Deployment \"inventory\" has 2 replicas: step "),
        "{message}"
    );
    assert!(message.contains("replicas would make it"), "{message}");
}

#[test]
fn each_kind_of_member_shows_what_it_does_forward_and_on_a_rollback() {
    golden("members", 0);
    let text = std::fs::read_to_string(fixtures().join("members.golden")).unwrap();
    for part in [
        "runs once: Job checkout-v6-db-migration-forward (timeout 10m)",
        "irreversible (drops the legacy_orders table; restore from backup): no rollback Job; on a rollback it stays applied",
        "checkout-api     dark · replica ratio",
        "sets ConfigMap checkout-flags: checkout-v2=on, checkout-v2-beta=off; bakes 3m",
        "held: recommendations (load test not signed off): deferred at the start with what depends on it: emails",
        // Flags first; the migration's rollback Job after everything that depends on it;
        // the deferred services never changed, so they are not in it.
        "  checkout-v2 (flag, first, at once) → checkout-api → drop-legacy (irreversible: stays applied) → db-migration (rollback Job checkout-v6-db-migration-rollback)\n",
        "risk            high: drop-legacy is an irreversible migration",
    ] {
        assert!(text.contains(part), "missing {part:?} in\n{text}");
    }
}

#[test]
fn a_train_across_too_many_teams_shows_its_edges_unrelated_changes_and_the_split() {
    golden("cross-team", 0);
}

#[test]
fn what_a_write_would_be_refused_for_is_refused_by_plan() {
    golden("refused-on-write", 1);
}

mod gonogo {
    use jiff::Timestamp;
    use signalman::api::{Approvals, Profile, ReleasePolicySpec, RiskProfiles};
    use signalman::engine::PolicyObservation;
    use signalman::plugin::read_releases;
    use signalman::plugin::schedule::{
        ClusterCheck, GoNoGo, PlanInput, PolicyRead, earliest_start, render_plan_with,
    };
    use signalman::plugin::style::Style;
    use signalman_core::policy::window::WindowCheck;

    fn release() -> signalman::api::Release {
        let text = std::fs::read_to_string(super::fixtures().join("gonogo.yaml")).unwrap();
        read_releases(&text).unwrap().remove(0)
    }

    fn plan(r: &signalman::api::Release, policy: PolicyRead) -> (String, bool) {
        let input = PlanInput {
            name: r.metadata.name.as_deref(),
            namespace: Some("shop"),
            spec: &r.spec,
        };
        let go = GoNoGo {
            policy,
            now: "2026-11-26T16:00:00Z".parse().unwrap(),
        };
        render_plan_with(
            &input,
            &ClusterCheck::Skipped("test".into()),
            &go,
            Style::plain(),
        )
    }

    #[test]
    fn offline_it_says_no_policy_was_read_and_lists_the_release_own_approvals() {
        let (text, valid) = plan(&release(), PolicyRead::NotRead("--offline".into()));
        assert!(valid, "{text}");
        assert!(
            text.contains("policy          no policy read (--offline)"),
            "{text}"
        );
        assert!(
            text.contains("gates           before each wave: deployments-ready (built in), no-critical-alerts (query <= 0), change-board (approval)"),
            "{text}"
        );
        assert!(
            text.contains("approvals       before wave 1: --gate change-board, --gate review"),
            "{text}"
        );
        assert!(
            text.contains("payments-api: after step 2 (50%): --step payments-api/2"),
            "{text}"
        );
        assert!(
            text.contains("gate timeout    2h: before wave 1 it ends Failed"),
            "{text}"
        );
    }

    #[test]
    fn a_policy_read_from_the_cluster_names_itself_and_adds_its_approvals() {
        let mut r = release();
        r.spec.release_type = None;
        let profile = Profile {
            approvals: Some(Approvals {
                before_start: Some(true),
                four_eyes: Some(true),
                approvers: vec!["alice".into(), "bob".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let observed = PolicyObservation::Found {
            name: "default".into(),
            spec: ReleasePolicySpec {
                risks: Some(RiskProfiles {
                    low: Some(profile.clone()),
                    medium: Some(profile.clone()),
                    high: Some(profile),
                }),
                ..Default::default()
            },
        };
        let (text, valid) = plan(&r, PolicyRead::Read(Box::new(observed)));
        assert!(valid, "{text}");
        assert!(
            text.contains("policy          ReleasePolicy default (the default)"),
            "{text}"
        );
        assert!(
            text.contains("approvers       only alice, bob count; four eyes: not the Release's creator (annotation signalman.dev/created-by)"),
            "{text}"
        );
    }

    fn cross_team(limits: signalman::api::Limits) -> (String, bool) {
        let text = std::fs::read_to_string(super::fixtures().join("cross-team.yaml")).unwrap();
        let r = read_releases(&text).unwrap().remove(0);
        let observed = PolicyObservation::Found {
            name: "prod".into(),
            spec: ReleasePolicySpec {
                limits: Some(limits),
                ..Default::default()
            },
        };
        plan(&r, PolicyRead::Read(Box::new(observed)))
    }

    #[test]
    fn the_policy_limit_on_cross_team_edges_is_the_one_plan_counts_against() {
        use signalman::api::{CrossTeamAction, Limits};
        let (text, valid) = cross_team(Limits {
            cross_team_edges: Some(5),
            cross_team: Some(CrossTeamAction::Refuse),
        });
        assert!(valid, "{text}");
        assert!(
            text.contains("cross-team edges  4, within the limit 5 (limits.crossTeamEdges of ReleasePolicy prod)"),
            "{text}"
        );
        // The unrelated newsletter change still asks for a split, and only warns.
        assert!(
            text.contains("the controller    it runs, with condition Warning (UnrelatedChanges)"),
            "{text}"
        );
        assert!(text.contains("    6. newsletter (team-growth)"), "{text}");
    }

    #[test]
    fn a_policy_that_refuses_a_train_over_its_limit_makes_plan_say_stalled() {
        use signalman::api::{CrossTeamAction, Limits};
        let (text, valid) = cross_team(Limits {
            cross_team_edges: None,
            cross_team: Some(CrossTeamAction::Refuse),
        });
        assert!(!valid, "{text}");
        assert!(
            text.contains("cross-team edges  4, more than the limit 3 (the default; the operator's --cross-team-edges may set another)"),
            "{text}"
        );
        assert!(
            text.contains("the controller    Stalled (CrossTeamLimit) before anything moves: ReleasePolicy prod refuses it (limits.crossTeam: refuse)"),
            "{text}"
        );
        assert!(
            text.contains("✖ spec.services[].dependsOn: 4 dependencies between owners, more than the limit 3: payments-api -> orders-db-proxy (team-payments -> team-data), "),
            "{text}"
        );
        assert!(
            text.contains("6. newsletter (team-growth); or raise limits.crossTeamEdges of ReleasePolicy prod\n"),
            "{text}"
        );
        // Warn (the default action) runs the same train with a warning.
        let (text, valid) = cross_team(Limits::default());
        assert!(valid, "{text}");
        assert!(
            text.contains("it runs, with condition Warning (CrossTeamEdges) and a Warning Event"),
            "{text}"
        );
    }

    #[test]
    fn a_named_policy_that_does_not_exist_is_a_problem() {
        let mut r = release();
        r.spec.policy = Some("strict".into());
        let missing = PolicyObservation::Missing {
            name: "strict".into(),
            named_by: "spec.policy".into(),
        };
        let (text, valid) = plan(&r, PolicyRead::Read(Box::new(missing)));
        assert!(!valid, "{text}");
        assert!(
            text.contains("✖ spec.policy: ReleasePolicy strict (named by spec.policy) does not exist, so the controller would hold this Release Pending (PolicyNotFound); create the policy or name another"),
            "{text}"
        );
        // No policy at all is not a problem: the behaviour from before policies.
        let (text, valid) = plan(
            &release(),
            PolicyRead::Read(Box::new(PolicyObservation::None)),
        );
        assert!(valid, "{text}");
        assert!(text.contains("policy          none applies"), "{text}");
    }

    #[test]
    fn the_earliest_start_is_the_next_opening_in_the_window_zone_and_what_is_frozen() {
        use signalman_core::api::{Freeze, Weekday, Window};
        use signalman_core::policy::window::check;
        let now: Timestamp = "2026-11-27T14:00:00Z".parse().unwrap(); // Friday 15:00 in Berlin
        let window = Window {
            days: vec![
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
            ],
            from: "09:00".into(),
            to: "17:00".into(),
            time_zone: Some("Europe/Berlin".into()),
        };
        let freeze = Freeze {
            friday_from: Some("12:00".into()),
            ..Default::default()
        };
        let closed = check(Some(&window), Some(&freeze), "spec.window", now).unwrap();
        let start = earliest_start(&closed, false, "fix");
        assert!(
            start.starts_with("Mon 09:00 Europe/Berlin; Friday"),
            "{start}"
        );
        assert!(
            start.ends_with("needs an override; sooner only with spec.override.justification and an approved override (kubectl signalman approve fix --window -m \"...\")"),
            "{start}"
        );
        let thursday: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let open = check(Some(&window), Some(&freeze), "spec.window", thursday).unwrap();
        assert_eq!(
            earliest_start(&open, false, "fix"),
            "now (the window is open)"
        );
        let never = WindowCheck {
            frozen: None,
            next_opening: None,
            opens: None,
            ..closed
        };
        assert!(
            earliest_start(&never, true, "fix").starts_with(
                "not within a year; sooner only with spec.override.justification (set)"
            )
        );
    }
}

#[test]
fn comparisons_and_verification_are_described_and_a_compare_only_service_is_warned_about() {
    use signalman::plugin::schedule::{ClusterCheck, PlanInput, render_plan};
    use signalman::plugin::style::Style;

    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/verify-compare.yaml"),
    )
    .unwrap();
    let r = read_releases(&text).unwrap().remove(0);
    let plan = |spec: &signalman::api::ReleaseSpec| {
        let input = PlanInput {
            name: r.metadata.name.as_deref(),
            namespace: Some("shop"),
            spec,
        };
        render_plan(
            &input,
            &ClusterCheck::Skipped("test".into()),
            Style::plain(),
        )
    };
    let (out, valid) = plan(&r.spec);
    assert!(valid, "{out}");
    assert!(
        out.contains(
            "error-rate canary ≤ stable + 0.005 · p99-latency-vs-stable canary ≤ stable × 1.2"
        ),
        "{out}"
    );
    assert!(
        out.contains("the whole train is watched 15m, measured every 1m: checkout-success >= 0.98"),
        "{out}"
    );
    // Verification counts in the least duration: 20m + 20m along the chain, then 15m.
    assert_eq!(
        schedule(&r.spec).unwrap().minimum,
        Duration::from_secs(55 * 60)
    );
    assert!(out.contains("→ verification 15m"), "{out}");
    assert!(!out.contains("Warnings:"), "{out}");

    // Only comparisons: the 100% step has nothing to judge it.
    let mut only = r.spec.clone();
    let metrics = &mut only
        .defaults
        .as_mut()
        .unwrap()
        .analysis
        .as_mut()
        .unwrap()
        .metrics;
    metrics.retain(|m| m.compare.is_some());
    let (out, valid) = plan(&only);
    assert!(valid, "{out}");
    assert!(
        out.contains("! spec.services[0]: every metric of payments-api compares the canary with the stable pods"),
        "{out}"
    );
}
