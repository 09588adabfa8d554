//! The view fixtures (`tests/fixtures/view/`): Releases with a status as the
//! controller writes it, read at a fixed time.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use signalman::api::Release;

// Not every test file reads the fixtures directly.
#[allow(dead_code)]
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/view")
}

pub fn release(name: &str) -> Release {
    let text = std::fs::read_to_string(dir().join(format!("{name}.yaml"))).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

pub fn now() -> Timestamp {
    "2026-11-26T16:00:00Z".parse().unwrap()
}
