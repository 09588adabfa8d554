//! Pure planning: waves from `dependsOn`, cycles, rollback order.
