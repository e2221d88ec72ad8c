//! The agent's slow readers (smartctl, the BMC, RAID controllers) each run on
//! a thread of their own, off the report path: one pass now, then one every
//! interval, never two at once, until told to stop.

use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// Starts thread `name` running `pass` now and then every `interval`, until
/// the returned sender is dropped or sent to. A pass that runs longer than
/// the interval delays the next one: passes never overlap.
pub fn spawn(
    name: &str,
    interval: Duration,
    mut pass: impl FnMut() + Send + 'static,
) -> std::io::Result<(Sender<()>, JoinHandle<()>)> {
    let (tx, rx) = channel::<()>();
    let handle = std::thread::Builder::new().name(name.into()).spawn(move || {
        loop {
            pass();
            match rx.recv_timeout(interval) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => break,
            }
        }
    })?;
    Ok((tx, handle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_pass_runs_at_once_and_the_thread_ends_when_told() {
        let n = Arc::new(AtomicUsize::new(0));
        let seen = n.clone();
        let (stop, handle) = spawn("test", Duration::from_secs(3600), move || {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap_or_else(|e| panic!("{e}"));
        while n.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(stop);
        handle.join().unwrap_or_else(|_| panic!("the worker panicked"));
        assert_eq!(
            n.load(Ordering::SeqCst),
            1,
            "one pass, then it waited for the interval or the stop"
        );
    }
}
