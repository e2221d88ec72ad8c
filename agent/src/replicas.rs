//! Which of the collector's replicas the agent talks to.
//!
//! The agent stays with one replica while it answers, so its reports (and
//! the collector's view of its sequence numbers) are not spread over several
//! for no reason. It moves on only when the replica is the problem: it
//! cannot be reached (connection refused, TLS failure, timeout) or it answers
//! 5xx. An answer about the request itself (a rejected report, a refused
//! credential) would be the same from every replica, and 429 is the
//! collector asking the agent to slow down: neither moves it.
//!
//! After a move the next replica is tried at once, not after the backoff: a
//! dead replica must not delay reports that another one would take now. Only
//! when every replica has failed in a row (a round) does the agent wait, so
//! a collector that is down everywhere is not hammered.
//!
//! This is pure bookkeeping: no I/O, no clock. The delivery loop
//! ([`crate::run`]) and enrollment use it; what to send stays theirs (the
//! same report, with the same sequence number, goes to the next replica).

/// Why an attempt against the current replica failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer: the connection was refused or reset, TLS failed, or the
    /// request timed out.
    Unreachable,
    /// The replica answered 5xx (including 503 while it starts or drains).
    ServerError(u16),
    /// 429: back-pressure from a working replica; its `Retry-After` is honoured there.
    BackPressure,
    /// Any other answer the agent cannot use (a 4xx about the request
    /// itself): another replica would say the same.
    Answered(u16),
}

impl Failure {
    /// The failure an HTTP status stands for.
    pub fn of_status(status: u16) -> Self {
        match status {
            429 => Failure::BackPressure,
            500..=599 => Failure::ServerError(status),
            s => Failure::Answered(s),
        }
    }

    /// Whether another replica might do better.
    pub fn moves(self) -> bool {
        matches!(self, Failure::Unreachable | Failure::ServerError(_))
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Moved to another replica that has not failed in this round: try it now.
    TryNow,
    /// Every replica failed in a row (or there is only one): wait the usual
    /// backoff, then try the current one. With several replicas the agent
    /// has moved on as well, so the next round starts with a different one.
    Backoff,
    /// Not the replica's fault: stay, and wait as the answer says.
    Stay,
}

/// The replicas, the one in use, and how many failed in a row.
#[derive(Debug, Clone)]
pub struct Replicas {
    urls: Vec<String>,
    current: usize,
    /// Replicas that failed one after the other since the last answer or
    /// the last backoff; a round is over when it reaches `urls.len()`.
    failed_in_row: usize,
}

impl Replicas {
    /// `urls` as checked by the config: not empty, no duplicates. An empty
    /// list is kept as one empty URL, so every attempt fails rather than
    /// the agent panicking.
    pub fn new(urls: &[String]) -> Self {
        let urls = if urls.is_empty() {
            vec![String::new()]
        } else {
            urls.to_vec()
        };
        Self {
            urls,
            current: 0,
            failed_in_row: 0,
        }
    }

    /// The URL of the replica in use.
    pub fn current(&self) -> &str {
        self.urls.get(self.current).map_or("", String::as_str)
    }

    /// How many replicas there are.
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Always false: there is at least one replica (see [`Replicas::new`]).
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The current replica answered (applied, duplicate, rejected, refused
    /// the credential): it works, so a new round starts from it.
    pub fn on_answer(&mut self) {
        self.failed_in_row = 0;
    }

    /// Records a failed attempt against the current replica and says what
    /// to do next; on a failure that [`moves`](Failure::moves), the current
    /// replica becomes the next one in the list (wrapping).
    pub fn on_failure(&mut self, failure: Failure) -> Next {
        if !failure.moves() {
            self.failed_in_row = 0;
            return Next::Stay;
        }
        self.current = (self.current + 1) % self.urls.len();
        self.failed_in_row += 1;
        if self.failed_in_row >= self.urls.len() {
            // A whole round failed: the next one starts after the backoff.
            self.failed_in_row = 0;
            Next::Backoff
        } else {
            Next::TryNow
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Replicas {
        Replicas::new(&["https://a".to_string(), "https://b".into(), "https://c".into()])
    }

    #[test]
    fn a_single_replica_backs_off_on_every_failure_and_never_moves() {
        let mut r = Replicas::new(&["https://a".to_string()]);
        assert_eq!(r.on_failure(Failure::Unreachable), Next::Backoff);
        assert_eq!(r.on_failure(Failure::ServerError(503)), Next::Backoff);
        assert_eq!(r.current(), "https://a");
    }

    #[test]
    fn an_unreachable_replica_moves_to_the_next_at_once_until_a_round_failed() {
        let mut r = three();
        assert_eq!(r.current(), "https://a");
        assert_eq!(r.on_failure(Failure::Unreachable), Next::TryNow);
        assert_eq!(r.current(), "https://b");
        assert_eq!(r.on_failure(Failure::ServerError(503)), Next::TryNow);
        assert_eq!(r.current(), "https://c");
        // c fails too: every replica failed in a row, back off, then start over at a.
        assert_eq!(r.on_failure(Failure::ServerError(500)), Next::Backoff);
        assert_eq!(r.current(), "https://a");
        // After the backoff a new round tries each again at once.
        assert_eq!(r.on_failure(Failure::Unreachable), Next::TryNow);
        assert_eq!(r.current(), "https://b");
    }

    #[test]
    fn the_agent_sticks_to_a_replica_that_answers() {
        let mut r = three();
        assert_eq!(r.on_failure(Failure::Unreachable), Next::TryNow);
        r.on_answer();
        assert_eq!(r.current(), "https://b");
        // b fails later: c and then a are tried at once, a full round before backing off.
        assert_eq!(r.on_failure(Failure::Unreachable), Next::TryNow);
        assert_eq!(r.current(), "https://c");
        assert_eq!(r.on_failure(Failure::Unreachable), Next::TryNow);
        assert_eq!(r.current(), "https://a");
        assert_eq!(r.on_failure(Failure::Unreachable), Next::Backoff);
        assert_eq!(r.current(), "https://b");
    }

    #[test]
    fn back_pressure_and_client_errors_do_not_move() {
        let mut r = three();
        assert_eq!(r.on_failure(Failure::of_status(429)), Next::Stay);
        assert_eq!(r.on_failure(Failure::of_status(400)), Next::Stay);
        assert_eq!(r.on_failure(Failure::of_status(401)), Next::Stay);
        assert_eq!(r.current(), "https://a");
        // And they end a round: the replica answered.
        assert_eq!(r.on_failure(Failure::Unreachable), Next::TryNow);
        assert_eq!(r.on_failure(Failure::of_status(429)), Next::Stay);
        assert_eq!(r.current(), "https://b");
        assert_eq!(r.on_failure(Failure::of_status(502)), Next::TryNow);
        assert_eq!(r.on_failure(Failure::of_status(503)), Next::TryNow);
        assert_eq!(r.on_failure(Failure::of_status(504)), Next::Backoff);
    }

    #[test]
    fn server_errors_are_classified_by_status() {
        assert_eq!(Failure::of_status(503), Failure::ServerError(503));
        assert_eq!(Failure::of_status(429), Failure::BackPressure);
        assert_eq!(Failure::of_status(408), Failure::Answered(408));
        assert!(Failure::of_status(500).moves() && Failure::Unreachable.moves());
        assert!(!Failure::of_status(404).moves());
    }
}
