//! Authenticated Prometheus (issue 15): the operator measures through basic
//! auth, TLS with a custom CA, a required client certificate and a bearer
//! token, each read from a Secret in its own namespace that
//! `--prometheus-auth-secret` names for that address. With wrong or no
//! credentials, or a Secret that does not exist, the Release holds with a
//! message naming the Secret and the fix; a fixed Secret takes effect without
//! a restart; no credential appears in status, Events or the operator's log.
//!
//! The test starts its own Prometheus servers (the machine's, 2.42) with a
//! `--web.config.file` requiring each mode; Prometheus cannot require a
//! bearer token, so that mode runs against a small authenticating proxy in
//! front of the shared Prometheus. Every query is `vector(0)`: a series any
//! Prometheus can read without scraping anything. Each address is reached as
//! 127.0.0.1 with the right credentials and as localhost with wrong or none
//! (a Secret is named per address, so the same server can be both).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use signalman::api::{Analysis, Defaults, Metric};
use signalman_e2e::operator::free_port;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Look, Scenario, WebApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// `openssl` with `args` in `dir`; panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for localhost and 127.0.0.1 and a client
/// certificate signed by it, and a client certificate from a CA nobody trusts.
fn make_pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "rogue-ca"] {
        let (key, crt, subj) = (
            format!("{ca}.key"),
            format!("{ca}.crt"),
            format!("/CN=e2e {ca}"),
        );
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend(["-keyout", key.as_str(), "-out", crt.as_str(), "-days", "2"]);
        args.extend(["-subj", subj.as_str()]);
        args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
        args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        openssl(dir, &args);
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (leaf, ca, ext) in [
        ("server", "ca", "server.ext"),
        ("client", "ca", "client.ext"),
        ("rogue-client", "rogue-ca", "client.ext"),
    ] {
        let mut args = vec!["req"];
        args.extend(ec);
        let key = format!("{leaf}.key");
        let csr = format!("{leaf}.csr");
        let subj = format!("/CN={leaf}");
        args.extend([
            "-keyout",
            key.as_str(),
            "-out",
            csr.as_str(),
            "-subj",
            subj.as_str(),
        ]);
        openssl(dir, &args);
        let (ca_crt, ca_key, crt) = (
            format!("{ca}.crt"),
            format!("{ca}.key"),
            format!("{leaf}.crt"),
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_crt,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                ext,
            ],
        );
    }
}

/// A Prometheus of the machine's, serving on `port` with `web_config`.
struct Prometheus {
    _child: Child,
}

async fn start_prometheus(dir: &Path, name: &str, port: u16, web_config: &str) -> Prometheus {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("prometheus.yml"),
        "global: {scrape_interval: 15s}\n",
    )
    .unwrap();
    std::fs::write(home.join("web.yml"), web_config).unwrap();
    let bin = std::env::var("PROMETHEUS_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "prometheus".into());
    let log = std::fs::File::create(home.join("prometheus.log")).unwrap();
    let child = Command::new(bin)
        .arg(format!(
            "--config.file={}",
            home.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--web.config.file={}",
            home.join("web.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            home.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("starting prometheus (apt-get install prometheus, or set PROMETHEUS_BIN)");
    Prometheus { _child: child }
}

/// Wait until `curl args` gets 200 from `url`'s /-/ready.
async fn wait_ready(name: &str, url: &str, args: &[&str]) {
    e2e::poll(
        &format!("{name} Prometheus ready"),
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let out = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(args)
                .arg(format!("{url}/-/ready"))
                .output()
                .await
                .expect("running curl");
            match String::from_utf8_lossy(&out.stdout).as_ref() {
                "200" => Look::Done(()),
                code => Look::NotYet(format!("{code} {}", String::from_utf8_lossy(&out.stderr))),
            }
        },
    )
    .await;
}

/// An HTTP proxy that passes a request to `upstream` only with
/// `Authorization: Bearer <token>`, else answers 401. One request per
/// connection (`Connection: close` is set both ways), so each is checked.
async fn bearer_proxy(token: String, upstream: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            let (token, upstream) = (token.clone(), upstream.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match down.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let want = format!("authorization: bearer {token}");
                let allowed = text.lines().any(|l| l.trim().eq_ignore_ascii_case(&want));
                if !allowed {
                    let _ = down
                        .write_all(
                            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\n\
                              Content-Length: 12\r\nConnection: close\r\n\r\nUnauthorized",
                        )
                        .await;
                    return;
                }
                let (first, _) = text.split_once("\r\n\r\n").unwrap();
                let mut request: String = first
                    .lines()
                    .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                    .map(|l| format!("{l}\r\n"))
                    .collect();
                request.push_str("Connection: close\r\n\r\n");
                let Ok(mut up) = TcpStream::connect(&upstream).await else {
                    return;
                };
                if up.write_all(request.as_bytes()).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                }
            });
        }
    });
    port
}

/// A Secret in the operator's namespace with these keys.
async fn secret(client: &kube::Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let body = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": data
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect::<serde_json::Map<_, _>>(),
    });
    api.patch(
        name,
        &PatchParams::apply("e2e").force(),
        &Patch::Apply(&body),
    )
    .await
    .unwrap_or_else(|e| panic!("writing Secret {name}: {e}"));
}

/// One service, steps of 50 % and 100 % baking 2 s each, `vector(0)` measured every second
/// (at most 0.5, two passes), a hold on the second error.
fn train(name: &str, address: Option<&str>) -> signalman::api::Release {
    let mut b = release(name).service(svc(name));
    if let Some(a) = address {
        b = b.prometheus(a);
    }
    let mut r = b.build();
    r.spec.defaults = Some(Defaults {
        steps: Some(rel::steps(&[(50, 2), (100, 2)])),
        analysis: Some(Analysis {
            interval: Some(Duration::from_secs(1).into()),
            failure_limit: Some(0),
            inconclusive_limit: Some(5),
            error_limit: Some(1),
            min_passes: Some(2),
            metrics: vec![Metric {
                name: "reachable".into(),
                query: "vector(0)".into(),
                min: None,
                max: Some(0.5),
                compare: None,
            }],
            ..Analysis::default()
        }),
    });
    r
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

#[tokio::test]
async fn each_mode_measures_through_its_secret_and_failures_name_it_never_its_value() {
    let started = Instant::now();
    let dir: PathBuf = e2e::scratch_dir().join(format!("prom-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_pki(&dir);
    // Values unique to this run, so finding one anywhere is a leak.
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let password = format!("pw-right-{salt}");
    let wrong_password = format!("pw-wrong-{salt}");
    let token = format!("tok-right-{salt}");
    let wrong_token = format!("tok-wrong-{salt}");

    let hash = bcrypt::hash(&password, 4).unwrap();
    let (pb, pt, pm) = (free_port().port(), free_port().port(), free_port().port());
    let d = dir.display();
    let _basic = start_prometheus(
        &dir,
        "basic",
        pb,
        &format!("basic_auth_users:\n  ops: {hash}\n"),
    )
    .await;
    let tls =
        format!("tls_server_config:\n  cert_file: {d}/server.crt\n  key_file: {d}/server.key\n");
    let _tls = start_prometheus(&dir, "tls", pt, &tls).await;
    let mtls = format!(
        "{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {d}/ca.crt\n"
    );
    let _mtls = start_prometheus(&dir, "mtls", pm, &mtls).await;
    let shared = e2e::prometheus_url();
    let px = bearer_proxy(
        token.clone(),
        shared
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned(),
    )
    .await;
    let ca = format!("{d}/ca.crt");
    let (cert, key) = (format!("{d}/client.crt"), format!("{d}/client.key"));
    let user = format!("ops:{password}");
    wait_ready(
        "basic auth",
        &format!("http://127.0.0.1:{pb}"),
        &["-u", &user],
    )
    .await;
    wait_ready(
        "TLS",
        &format!("https://127.0.0.1:{pt}"),
        &["--cacert", &ca],
    )
    .await;
    wait_ready(
        "mutual TLS",
        &format!("https://127.0.0.1:{pm}"),
        &["--cacert", &ca, "--cert", &cert, "--key", &key],
    )
    .await;
    eprintln!(
        "three Prometheus servers ready after {:?}",
        started.elapsed()
    );

    // Each address with the Secret named for it; the default Prometheus
    // (--prometheus-url) with one that does not exist.
    let map = [
        format!("http://127.0.0.1:{pb}=prom-basic"),
        format!("http://localhost:{pb}=prom-basic-wrong"),
        format!("https://127.0.0.1:{pt}=prom-ca"),
        format!("https://127.0.0.1:{pm}=prom-mtls"),
        format!("https://localhost:{pm}=prom-mtls-rogue"),
        format!("http://127.0.0.1:{px}=prom-token"),
        format!("http://localhost:{px}=prom-token-wrong"),
        "prom-absent".to_owned(),
    ];
    // Every address a Release here names is one the operator allows (those
    // without a Secret too: they must fail on credentials, not on the list).
    let allowed = [("http", pb), ("https", pt), ("https", pm), ("http", px)]
        .iter()
        .flat_map(|(scheme, port)| {
            ["127.0.0.1", "localhost"].map(|host| format!("{scheme}://{host}:{port}"))
        })
        .collect::<Vec<_>>()
        .join(",");
    let map = map.join(",");
    let sc = Scenario::start_with("prom-auth", |l| {
        l.arg(&format!("--prometheus-auth-secret={map}"))
            .arg(&format!("--prometheus-allowed-address={allowed}"))
    })
    .await;
    let ns = sc.ns().to_owned();
    let c = &sc.client;
    let (client_crt, client_key) = (read(&dir, "client.crt"), read(&dir, "client.key"));
    let (rogue_crt, rogue_key) = (
        read(&dir, "rogue-client.crt"),
        read(&dir, "rogue-client.key"),
    );
    let ca_crt = read(&dir, "ca.crt");
    secret(
        c,
        &ns,
        "prom-basic",
        &[("username", "ops"), ("password", &password)],
    )
    .await;
    secret(
        c,
        &ns,
        "prom-basic-wrong",
        &[("username", "ops"), ("password", &wrong_password)],
    )
    .await;
    secret(c, &ns, "prom-ca", &[("ca.crt", &ca_crt)]).await;
    secret(
        c,
        &ns,
        "prom-mtls",
        &[
            ("ca.crt", &ca_crt),
            ("tls.crt", &client_crt),
            ("tls.key", &client_key),
        ],
    )
    .await;
    secret(
        c,
        &ns,
        "prom-mtls-rogue",
        &[
            ("ca.crt", &ca_crt),
            ("tls.crt", &rogue_crt),
            ("tls.key", &rogue_key),
        ],
    )
    .await;
    secret(c, &ns, "prom-token", &[("token", &token)]).await;
    secret(c, &ns, "prom-token-wrong", &[("token", &wrong_token)]).await;

    let good = [
        ("basic", format!("http://127.0.0.1:{pb}")),
        ("tls", format!("https://127.0.0.1:{pt}")),
        ("mtls", format!("https://127.0.0.1:{pm}")),
        ("bearer", format!("http://127.0.0.1:{px}")),
    ];
    let held: [(&str, Option<String>, String); 5] = [
        (
            "basic-wrong",
            Some(format!("http://localhost:{pb}")),
            format!(
                "Prometheus at http://localhost:{pb} refused the credentials from Secret \
                 {ns}/prom-basic-wrong (401 Unauthorized)"
            ),
        ),
        (
            "tls-untrusted",
            Some(format!("https://localhost:{pt}")),
            "Prometheus's certificate is not one the operator trusts: name a Secret with its \
             CA under key \"ca.crt\" for this address"
                .to_owned(),
        ),
        (
            "mtls-rogue",
            Some(format!("https://localhost:{pm}")),
            format!(
                "it may require a client certificate its CA trusts, under keys \"tls.crt\" and \
                 \"tls.key\" of Secret {ns}/prom-mtls-rogue"
            ),
        ),
        (
            "bearer-wrong",
            Some(format!("http://localhost:{px}")),
            format!(
                "Prometheus at http://localhost:{px} refused the credentials from Secret \
                 {ns}/prom-token-wrong (401 Unauthorized)"
            ),
        ),
        (
            "missing",
            None,
            format!(
                "are in Secret {ns}/prom-absent (--prometheus-auth-secret), which does not \
                 exist; create it in {ns}"
            ),
        ),
    ];
    let apps: Vec<WebApp> = good
        .iter()
        .map(|g| g.0)
        .chain(held.iter().map(|h| h.0))
        .map(|n| WebApp::new(n).replicas(1))
        .collect();
    sc.deploy(&apps).await;
    let api = sc.releases();
    for (name, address) in &good {
        rel::apply(c, &ns, &train(name, Some(address))).await;
    }
    for (name, address, _) in &held {
        rel::apply(c, &ns, &train(name, address.as_deref())).await;
    }

    // Through each mode the train measures and succeeds.
    for (name, _) in &good {
        let s = rel::wait_phase(&api, name, "Succeeded", Duration::from_secs(60)).await;
        let passes = rel::service(&s, name).unwrap()["measurements"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["outcome"] == "Pass")
            .count();
        assert!(passes >= 2, "{name}: {}", e2e::pretty(&s));
    }
    eprintln!("four modes succeeded after {:?}", started.elapsed());

    // Without the right credentials it holds, and says which Secret to fix.
    let mut holds = Vec::new();
    for (name, _, want) in &held {
        let s = rel::wait_status(&api, name, "a hold", Duration::from_secs(30), |s| {
            rel::phase(s) == "Held"
        })
        .await;
        let message = s["hold"]["message"].as_str().unwrap_or_default().to_owned();
        eprintln!("{name}: {message}");
        assert_eq!(
            s["hold"]["reason"],
            "ErrorLimit",
            "{name}: {}",
            e2e::pretty(&s)
        );
        assert!(
            message.contains(want.as_str()),
            "{name}: {message}\nwanted: {want}"
        );
        let stalled = rel::condition(&s, "Stalled").expect("Stalled condition");
        assert!(
            stalled["message"]
                .as_str()
                .unwrap_or_default()
                .contains(want.as_str()),
            "{name}: {stalled}"
        );
        holds.push((
            name.to_string(),
            s["hold"]["id"].as_str().unwrap().to_owned(),
        ));
    }
    let events = signalman_e2e::members::events(c, &ns, "basic-wrong").await;
    assert!(
        events.iter().any(|(t, _, note)| t == "Warning"
            && note.contains(&format!("Secret {ns}/prom-basic-wrong (401 Unauthorized)"))),
        "{events:#?}"
    );
    eprintln!("five holds after {:?}", started.elapsed());

    // The Secret fixed, the hold lifted: the next query uses the new
    // credentials, with no restart.
    let fixed = Instant::now();
    secret(
        c,
        &ns,
        "prom-basic-wrong",
        &[("username", "ops"), ("password", &password)],
    )
    .await;
    let id = holds
        .iter()
        .find(|h| h.0 == "basic-wrong")
        .unwrap()
        .1
        .clone();
    rel::patch_spec(&api, "basic-wrong", |s| s.resume_hold = Some(id)).await;
    rel::wait_phase(&api, "basic-wrong", "Succeeded", Duration::from_secs(30)).await;
    eprintln!(
        "basic-wrong succeeded {:?} after its Secret was fixed",
        fixed.elapsed()
    );

    // No credential anywhere: status, Events (this namespace is also the
    // operator's), the operator's log.
    let basic_header = base64::engine::general_purpose::STANDARD.encode(&user);
    let key_line = |pem: &str| pem.lines().nth(1).unwrap_or_default().to_owned();
    let values = [
        password.clone(),
        wrong_password.clone(),
        token.clone(),
        wrong_token.clone(),
        basic_header,
        key_line(&client_key),
        key_line(&rogue_key),
    ];
    let releases = serde_json::to_string(&api.list(&ListParams::default()).await.unwrap()).unwrap();
    let events: Api<Event> = Api::namespaced(c.clone(), &ns);
    let events =
        serde_json::to_string(&events.list(&ListParams::default()).await.unwrap()).unwrap();
    let log = std::fs::read_to_string(sc.operator.log_path()).unwrap();
    for v in &values {
        assert!(
            !releases.contains(v.as_str()),
            "a credential is in a Release"
        );
        assert!(!events.contains(v.as_str()), "a credential is in an Event");
        assert!(
            !log.contains(v.as_str()),
            "a credential is in the operator's log"
        );
    }
    // The log says which Secrets were used and how, by name.
    assert!(
        log.contains("Prometheus client built with credentials")
            && log.contains(&format!("{ns}/prom-mtls@"))
            && log.contains("custom CA, client certificate"),
        "{}",
        sc.operator.log_tail()
    );
    sc.end().await;
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("done in {:?}", started.elapsed());
}
