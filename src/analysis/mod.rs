//! Measurement semantics (pure) and the Prometheus client (shell side).
