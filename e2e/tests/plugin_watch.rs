//! `kubectl signalman get NAME --watch` in a real terminal: tmux runs the
//! plugin in a pseudo-terminal and `capture-pane` reads the screen, which must
//! redraw in place as the canary's weight moves, and stop when the release ends.

mod plugin_support;

use std::process::Command;
use std::time::{Duration, Instant};

use signalman_e2e::operator::{self as op, Operator};
use signalman_e2e::{self as e2e, TestNamespace};

use plugin_support::{install_crd, plugin_bin, release_yaml};

/// A tmux server of our own (its own socket), killed with its session on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("tmux");
        // CI has no terminal of its own; tmux still wants to know what the client is.
        if std::env::var_os("TERM").is_none_or(|t| t.is_empty() || t == "dumb") {
            cmd.env("TERM", "xterm-256color");
        }
        let out = cmd
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "watch"])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

#[tokio::test]
async fn the_watch_view_redraws_in_a_terminal_as_weights_change() {
    let client = e2e::client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "plugin-watch").await;
    let n = ns.name();
    let _operator = Operator::start(n).await;
    e2e::apply_yaml(
        &client,
        Some(n),
        &op::web_app("web", 3, "registry.example/web:v1", 0),
    )
    .await;
    e2e::wait_deployment_ready(&client, n, "web", 3, Duration::from_secs(60)).await;
    e2e::apply_yaml(
        &client,
        Some(n),
        &release_yaml("train", &[("web", &[], &[(25, 4), (50, 4), (100, 3)], "")]),
    )
    .await;
    let api = op::releases(&client, n);
    op::wait_status(
        &api,
        "train",
        "the release to start",
        Duration::from_secs(60),
        |s| op::phase(s) == "Progressing",
    )
    .await;

    let tmux = Tmux {
        socket: format!("signalman-e2e-{n}"),
    };
    let cmd = format!(
        "TZ=UTC {} get train -n {n} --watch --kubeconfig {}; echo WATCH-EXITED-$?; sleep 600",
        plugin_bin().display(),
        e2e::kubeconfig_path().display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "watch",
        "-x",
        "150",
        "-y",
        "40",
        &cmd,
    ]);

    // Read the screen every 200 ms; note each weight the web line shows.
    let mut weights: Vec<u32> = Vec::new();
    let mut screens = Vec::new();
    let start = Instant::now();
    let last = loop {
        let screen = tmux.screen();
        if let Some(line) = screen
            .lines()
            .find(|l| l.contains(" web ") && l.contains('%'))
        {
            let w = line
                .split_whitespace()
                .find_map(|t| t.strip_suffix('%').and_then(|v| v.parse::<u32>().ok()));
            if let Some(w) = w
                && weights.last() != Some(&w)
            {
                weights.push(w);
                screens.push(screen.clone());
            }
        }
        if screen.contains("WATCH-EXITED-") {
            break screen;
        }
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "the watch did not end; screen:\n{screen}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("weights seen on screen: {weights:?}\nlast screen:\n{last}");
    assert!(
        weights.contains(&25) && weights.contains(&50),
        "weights seen {weights:?}"
    );
    let i25 = weights.iter().position(|w| *w == 25).unwrap();
    let i50 = weights.iter().position(|w| *w == 50).unwrap();
    assert!(i25 < i50, "weights out of order: {weights:?}");
    // Drawn in place: one header on screen, never a scroll of stacked frames.
    for s in &screens {
        assert_eq!(
            s.matches("Release train").count(),
            1,
            "frames stacked up:\n{s}"
        );
        assert!(s.contains("Ctrl-C to stop watching"), "{s}");
        assert!(s.contains('█'), "a terminal gets block bars:\n{s}");
    }
    // The watch of a named release ends with the release, showing where it ended.
    assert!(last.contains("WATCH-EXITED-0"), "{last}");
    assert!(last.contains("✔ Succeeded"), "{last}");
    assert!(last.contains("Promoted"), "{last}");
    ns.delete().await;
}
