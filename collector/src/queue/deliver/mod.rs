//! Delivery of the outbox to the configured sinks: one task per sink, in
//! outbox order. A change is sent, then (one writer job) the sink's cursor
//! moves past it and the ticket id it gave is kept on the case. A sink that
//! is down is retried with exponential backoff (1 s doubling to 5 min) and
//! keeps its place, so nothing is lost and the order holds; a change the
//! sink refuses for good ([`SinkError::Permanent`], five times) is set aside
//! and listed on `GET /api/v1/outbox`.

use std::sync::Arc;
use std::time::Duration;

use super::outbox::{self, Pending};
use crate::metrics::Metrics;
use crate::sinks::{CaseEvent, Change, Sink, SinkError};
use crate::store::StoreError;
use crate::writer::Writer;

/// How often an idle sink looks for new changes.
const POLL: Duration = Duration::from_millis(300);
/// Permanent refusals of one change before it is set aside.
const PERMANENT_TRIES: i64 = 5;

/// The wait after a failed delivery: `first_ms`, doubling per failure in a
/// row, at most `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first_ms: i64,
    pub max_ms: i64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first_ms: 1_000,
            max_ms: 300_000,
        }
    }
}

impl Backoff {
    fn after(self, failures_before: i64) -> i64 {
        self.first_ms
            .saturating_mul(1_i64 << failures_before.clamp(0, 20))
            .min(self.max_ms)
    }
}

/// The change as a sink sees it.
pub fn event(p: &Pending, public_url: Option<&str>) -> CaseEvent {
    let id = p.item.id.unwrap_or_default();
    let meta = p.meta.as_ref();
    CaseEvent {
        outbox_id: p.outbox_id,
        case_id: id,
        identity_key: p.item.key.to_string(),
        customer: p.item.key.customer.clone(),
        asset: p.item.key.asset.clone(),
        check: p.item.key.check.clone(),
        component: p.item.key.component.clone(),
        severity: p.item.severity.as_str().to_string(),
        status: p.item.status.to_string(),
        title: meta.map_or_else(|| super::title_of(&p.item), |m| m.title.clone()),
        assignee: meta.and_then(|m| m.assignee.clone()),
        level: meta.map_or_else(|| "L1".to_string(), |m| m.level.clone()),
        out_of_scope: meta.is_none_or(|m| m.out_of_scope),
        response_due_ms: meta.and_then(|m| m.response_due_ms),
        resolution_due_ms: meta.and_then(|m| m.resolution_due_ms),
        change: Change {
            at_ms: p.change.at_ms,
            actor: p.change.actor.clone(),
            from_status: p.change.from_status.map(|s| s.to_string()),
            to_status: p.change.to_status.to_string(),
            comment: p.change.comment.clone(),
            visibility: p.change.visibility.as_str().to_string(),
        },
        url: public_url.map(|u| format!("{}/cases/{id}", u.trim_end_matches('/'))),
    }
}

/// Starts one delivery task per sink; they run until aborted.
pub fn start(
    replica: Arc<crate::replicas::Replica>,
    sinks: Vec<Sink>,
    reader: crate::store::Readers,
    writer: Writer,
    metrics: Arc<Metrics>,
    public_url: Option<String>,
    backoff: Backoff,
) -> Vec<tokio::task::JoinHandle<()>> {
    sinks
        .into_iter()
        .map(|sink| {
            let (reader, writer, metrics, url) = (reader.clone(), writer.clone(), metrics.clone(), public_url.clone());
            let replica = replica.clone();
            tokio::spawn(async move { run(replica, sink, reader, writer, metrics, url, backoff).await })
        })
        .collect()
}

async fn run(
    replica: Arc<crate::replicas::Replica>,
    sink: Sink,
    reader: crate::store::Readers,
    writer: Writer,
    metrics: Arc<Metrics>,
    url: Option<String>,
    backoff: Backoff,
) {
    let name = sink.name.clone();
    {
        let n = name.clone();
        if let Err(e) = writer
            .run(move |c| outbox::ensure_sink(c, &n).map(|_| serde_json::Value::Null))
            .await
        {
            tracing::error!(sink = %name, error = %e, "cannot start delivering to the sink");
            return;
        }
    }
    tracing::info!(sink = %name, kind = ?sink.kind(), "delivering case changes");
    // One replica delivers to a sink, in order: the one holding its job.
    let job = crate::replicas::deliver_job(&name);
    loop {
        if !replica.holds(&job) {
            tokio::time::sleep(POLL).await;
            continue;
        }
        match step(&sink, &reader, &writer, &metrics, url.as_deref(), backoff).await {
            Ok(Some(wait)) => tokio::time::sleep(wait).await,
            Ok(None) => {}
            Err(e) => {
                tracing::error!(sink = %name, error = %e, "outbox delivery");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Delivers at most one change; `Some(wait)`: nothing to do for that long.
async fn step(
    sink: &Sink,
    reader: &crate::store::Readers,
    writer: &Writer,
    metrics: &Metrics,
    url: Option<&str>,
    backoff: Backoff,
) -> Result<Option<Duration>, StoreError> {
    let name = sink.name.clone();
    let (state, next) = {
        let n = name.clone();
        crate::store::read_on(reader, move |c| {
            Ok((outbox::sink_state(c, &n)?, outbox::next_pending(c, &n)?))
        })
        .await?
    };
    if let Some(s) = &state {
        metrics.set_outbox_pending(&name, s.pending);
        let now = caretaker_shared::now_ms();
        if s.next_attempt_ms > now {
            return Ok(Some(
                Duration::from_millis(u64::try_from(s.next_attempt_ms - now).unwrap_or(0)).min(POLL),
            ));
        }
    }
    let Some(p) = next else {
        return Ok(Some(POLL));
    };
    let (outbox_id, item_id) = (p.outbox_id, p.item.id.unwrap_or_default());
    if outbox::muted(&p) {
        let n = name.clone();
        writer
            .run(move |c| {
                outbox::delivered(c, &n, outbox_id, item_id, None, caretaker_shared::now_ms())?;
                Ok(serde_json::Value::Null)
            })
            .await?;
        metrics.count_delivery(&name, "muted");
        return Ok(None);
    }
    let ev = event(&p, url);
    match sink.deliver(&ev, p.external_id.as_deref()).await {
        Ok(d) => {
            let n = name.clone();
            writer
                .run(move |c| {
                    outbox::delivered(
                        c,
                        &n,
                        outbox_id,
                        item_id,
                        d.external_id.as_deref(),
                        caretaker_shared::now_ms(),
                    )?;
                    Ok(serde_json::Value::Null)
                })
                .await?;
            metrics.count_delivery(&name, "delivered");
            Ok(None)
        }
        Err(e) => {
            let permanent = matches!(e, SinkError::Permanent(_));
            metrics.count_delivery(&name, if permanent { "refused" } else { "failed" });
            let attempts = state.map_or(0, |s| s.attempts);
            let backoff = backoff.after(attempts);
            let text = e.to_string();
            let n = name.clone();
            writer
                .run(move |c| {
                    let now = caretaker_shared::now_ms();
                    let tries = outbox::failed(c, &n, &text, now + backoff)?;
                    if permanent && tries >= PERMANENT_TRIES {
                        outbox::set_aside(c, &n, outbox_id, &text, now)?;
                        tracing::error!(sink = %n, outbox_id, error = %text, "change set aside after repeated refusals");
                    }
                    Ok(serde_json::Value::Null)
                })
                .await?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests;
