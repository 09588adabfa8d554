//! `kubectl signalman get NAME --watch` in a real terminal: tmux runs the
//! plugin in a pseudo-terminal and `capture-pane` reads the screen, which must
//! redraw in place as the canary's weight moves, and stop when the release ends.

use std::process::Command;
use std::time::{Duration, Instant};

use signalman_e2e::plugin::plugin_bin;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Scenario, WebApp};

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
    let sc = Scenario::start("plugin-watch").await;
    let n = sc.ns();
    sc.deploy(&[WebApp::new("web").replicas(3)]).await;
    let train = release("train")
        .defaults(&[(50, 2), (100, 2)])
        .service(svc("web").steps(&[(25, 4), (50, 4), (100, 3)]))
        .build();
    let api = sc.apply(&train).await;
    rel::wait_status(
        &api,
        "train",
        "the release to start",
        Duration::from_secs(60),
        |s| rel::phase(s) == "Progressing",
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
    sc.end().await;
}
