//! Waiting for what happens asynchronously, without sleeping a fixed time.

use std::future::Future;
use std::time::Duration;

/// Polls `cond` every 50 ms until it holds, failing the test with `what` once `within`
/// has passed.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
