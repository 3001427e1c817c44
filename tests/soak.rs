//! A short run of the soak (`examples/soak.rs`) as a test: a few seconds,
//! fewer callers, the same checks (every result checked, no hang, threads
//! back to the baseline after the idle timeout, RSS bounded). Runs with any
//! feature set: the adapters that are not enabled are left out.

mod common;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/soak.rs"]
mod soak_example;

use std::time::Duration;

use common::watchdog;
use soak_example::{soak, Config};

#[test]
fn short_soak() {
    let report = watchdog(180, || {
        soak(&Config {
            duration: Duration::from_secs(3),
            callers: 12,
            idle_timeout: Duration::from_secs(1),
            grace: Duration::from_secs(60),
        })
    });
    report.print();
    assert!(report.ok(), "soak failed: {:#?}", report.failures);
    assert!(report.calls > 0 && report.items > 0);
    assert!(report.timeouts > 0 && report.panics > 0);
    assert_eq!(report.threads_after_idle, report.threads_start);
}
