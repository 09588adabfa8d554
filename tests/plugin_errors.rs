//! The plugin's answer when the cluster has no Release CRD. The shared e2e
//! cluster always has it installed (removing it would break every other test),
//! so this runs the plugin against a minimal HTTP server that answers like an
//! API server without the `signalman.dev` group: `/version` works, anything
//! under `/apis/signalman.dev/` is the apiserver's plain `404 page not found`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;

fn serve_without_the_crd() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (status, kind, body) = if path == "/version" {
                (
                    "200 OK",
                    "application/json",
                    r#"{"major":"1","minor":"34","gitVersion":"v1.34.4","gitCommit":"x","gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.26","compiler":"gc","platform":"linux/amd64"}"#.to_owned(),
                )
            } else {
                (
                    "404 Not Found",
                    "text/plain; charset=utf-8",
                    "404 page not found\n".to_owned(),
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn a_cluster_without_the_crd_is_told_how_to_install_it() {
    let port = serve_without_the_crd();
    let dir = std::env::temp_dir().join(format!("signalman-plugin-nocrd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"http://127.0.0.1:{port}\"}}}}]\n\
             users: [{{name: u, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let expected = format!(
        "error: the Release CRD (releases.signalman.dev) is not installed in the cluster at http://127.0.0.1:{port}; \
         install it with kubectl apply -f crds/ or the Helm chart\n"
    );
    for args in [
        &["get", "checkout", "-n", "shop"][..],
        &["get", "-n", "shop"],
        &["get", "-A"],
        &["pause", "checkout", "-n", "shop"],
        &["timeline", "checkout", "-n", "shop"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kubectl-signalman"))
            .args(args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), expected, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // plan still checks the file, and notes the missing CRD.
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-signalman"))
        .args([
            "plan",
            "-f",
            "tests/fixtures/plan/no-metrics.yaml",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("note: the Release CRD is not installed"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
