//! The `kubectl signalman` plugin: plan a Release before applying it, watch a
//! train move, steer it (pause, resume, abort, rollback) with declarative spec
//! fields, and tell each audience how it ended ([`report`]).
//!
//! The views ([`view`], [`timeline`], [`schedule`], [`steer`]) and the
//! [`screen`] are pure: text is rendered from a Release (or a spec) and the
//! time, so the live view, piped output and tests share one code path.
//! [`cluster`] is the only contact with the cluster; [`commands`] and
//! [`watch`] join the two for each command the bin dispatches to. Whatever a
//! Release (or the cluster) says is printed through [`untrusted`].
//! [`dashboard`] serves the same views to a browser.

pub mod approve;
pub mod cluster;
pub mod commands;
pub mod dashboard;
pub mod gonogo;
pub mod members;
pub mod report;
pub mod schedule;
pub mod screen;
pub mod steer;
pub mod style;
pub mod timeline;
pub mod untrusted;
pub mod view;
pub mod watch;

use serde::Deserialize;

use crate::api::Release;

/// The Release documents of a (multi-document) YAML file, in order; other kinds
/// (the Deployments and Services an example ships with) are skipped.
/// A malformed Release is an error naming the document, the field and the line.
pub fn read_releases(text: &str) -> Result<Vec<Release>, String> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value =
            serde_yaml::Value::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        if kind != "Release" {
            continue;
        }
        let api_version = value
            .get("apiVersion")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        if api_version != "signalman.dev/v1alpha1" {
            return Err(format!(
                "document {}: apiVersion {api_version:?} is not signalman.dev/v1alpha1; set apiVersion: signalman.dev/v1alpha1",
                i + 1
            ));
        }
        // Deserialize the document again from the text, so errors carry its line and column.
        let doc = serde_yaml::Deserializer::from_str(text)
            .nth(i)
            .expect("the same document");
        let release = Release::deserialize(doc).map_err(|e| {
            let text = e.to_string();
            let duration = ["bake:", "interval:", "holdTimeout:"]
                .iter()
                .any(|f| text.contains(f));
            let hint = if duration {
                "; durations are written like 30s, 2m or 1h30m"
            } else {
                ""
            };
            format!("document {}: {text}{hint}", i + 1)
        })?;
        out.push(release);
    }
    Ok(out)
}
