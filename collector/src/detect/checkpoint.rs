//! Checkpoints of a host's detection state, so a restart (or another
//! collector taking the host over) does not start its windows over: a 2-day
//! filesystem forecast or a 30-day wear forecast would otherwise fire days
//! late after every restart.
//!
//! # Format
//!
//! One blob per host: a [`FORMAT`] byte, then the state as JSON, gzipped.
//! JSON + gzip rather than a binary serde format because it needs no new
//! dependency (both are already used for reports), a checkpoint can be read
//! by hand (`tail -c +2 | zcat`) when a forecast looks wrong, and gzip takes
//! away most of what JSON costs over a binary format: the repeated keys and
//! label names compress to almost nothing, and the numbers are what remains
//! in either. A value is kept as the bits of its `f64` (an integer), so it
//! comes back bit-exact and the restored engine gives the very signals the
//! running one would have. Label strings are written by value, once per
//! label set, and interned again on restore (the engine's strings are
//! shared process-wide; their addresses mean nothing elsewhere).
//!
//! A blob whose version byte is not [`FORMAT`], or that cannot be read, is
//! refused with a [`CheckpointError`]; the caller logs it and the host
//! starts empty, as it did before checkpoints existed. A format change bumps
//! [`FORMAT`], and old checkpoints are dropped cleanly instead of misread.
//!
//! # Rules that changed since the checkpoint
//!
//! Series are keyed by their source (`metric[/divide_by]@window_ms`), not by
//! a rule, so a series is kept whenever a rule of the current set still
//! reads that source with a window: its history is as good for the new rule
//! as for the old. A source no rule reads any more is dropped. Evaluation
//! states (a pending `for`, a firing rule) belong to one rule: each is saved
//! with the fingerprint of its rule (every field, as
//! [`Engine::replace_rules`] compares them) and restored only onto a rule
//! with the same fingerprint; a changed or removed rule's states are dropped
//! and the rule starts afresh, as a reload does.
//!
//! # Across the gap
//!
//! The collector was down between the checkpoint and the restore, which is
//! no evidence about the hosts: a restored host that was reachable gets a
//! full absence limit from the restore before it counts as unreachable, and
//! when the gap exceeds [`GONE_AFTER_INTERVALS`] of its intervals, pending
//! thresholds start their `for` afresh, so the gap cannot complete one (the
//! same rule as for a host coming back from silence).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;

use flate2::Compression;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::labels::{ByLabels, Key, Labels};
use super::{Engine, EvalState, GONE_AFTER_INTERVALS, HostState, MAX_POINTS, Series};
use crate::rules::Rule;

/// The checkpoint format's version, its first byte.
pub const FORMAT: u8 = 1;

/// Most bytes a checkpoint may expand to: far past any real host (10,000
/// series of 24 points is ~10 MB of JSON), still a bound on a corrupt blob.
const MAX_EXPANDED: u64 = 256 << 20;

/// Why a checkpoint was not restored.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint is empty")]
    Empty,
    #[error("checkpoint format {0} is not this collector's ({FORMAT})")]
    Version(u8),
    #[error("the checkpoint cannot be read: {0}")]
    Corrupt(String),
}

/// What a restore brought back, and what it dropped because the rules
/// changed since the checkpoint.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    pub series: usize,
    /// Series of a source no rule reads any more.
    pub series_dropped: usize,
    pub states: usize,
    /// Evaluation states of rules changed or removed since the checkpoint.
    pub states_dropped: usize,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    customer: String,
    interval_ms: i64,
    last_report_ms: i64,
    unreachable: bool,
    dropped: u64,
    limited: bool,
    /// Every label set the host's series and states use, once each.
    labels: Vec<Vec<(String, String)>>,
    sources: Vec<SavedSource>,
    rules: Vec<SavedRule>,
}

#[derive(Serialize, Deserialize)]
struct SavedSource {
    source: String,
    series: Vec<SavedSeries>,
}

#[derive(Serialize, Deserialize)]
struct SavedSeries {
    /// Index into [`Saved::labels`].
    labels: u32,
    newest_samples: u32,
    /// `(at_ms, f64 bits)`.
    points: Vec<(i64, u64)>,
}

#[derive(Serialize, Deserialize)]
struct SavedRule {
    /// [`fingerprint`] of the rule.
    rule: String,
    /// For a person reading the checkpoint.
    name: String,
    states: Vec<SavedState>,
}

#[derive(Serialize, Deserialize)]
struct SavedState {
    labels: u32,
    since_ms: Option<i64>,
    firing: bool,
    seen_ms: i64,
}

/// A rule's identity across processes: a hash of every field (what
/// [`Engine::replace_rules`] compares), stable as long as the rule's
/// definition is.
pub(super) fn fingerprint(rule: &Rule) -> String {
    let digest = Sha256::digest(format!("{rule:?}").as_bytes());
    hex::encode(&digest[..12])
}

/// The rule set's fingerprint: of its rules' fingerprints, in order.
pub(super) fn set_fingerprint(rules: &[String]) -> String {
    let mut h = Sha256::new();
    for r in rules {
        h.update(r.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..12])
}

/// A whole rule set's fingerprint, as its checkpoints carry it and
/// `/metrics` shows it (`caretaker_config_file_info{file="rules"}`).
pub fn rule_set_fingerprint(rules: &crate::rules::RuleSet) -> String {
    set_fingerprint(&rules.rules.iter().map(fingerprint).collect::<Vec<_>>())
}

/// A label set's pairs, as a [`Key`] holds them.
type Pairs = [(Arc<str>, Arc<str>)];

/// The label sets of a host, numbered once each.
#[derive(Default)]
struct LabelTable<'a> {
    at: HashMap<&'a Pairs, u32>,
    out: Vec<Vec<(String, String)>>,
}

impl<'a> LabelTable<'a> {
    fn index(&mut self, key: &'a Key) -> u32 {
        if let Some(i) = self.at.get(&**key) {
            return *i;
        }
        let i = self.out.len() as u32;
        self.out
            .push(key.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        self.at.insert(key, i);
        i
    }
}

impl Engine {
    /// The host's state as a checkpoint blob (see the module docs); `None`
    /// for a host never seen.
    pub fn checkpoint_host(&self, host: &str) -> Option<Vec<u8>> {
        let h = self.hosts.get(host)?;
        let mut table = LabelTable::default();
        let sources = h
            .series
            .iter()
            .map(|(source, of_source)| SavedSource {
                source: source.to_string(),
                series: of_source
                    .entries()
                    .map(|(key, s)| SavedSeries {
                        labels: table.index(key),
                        newest_samples: s.newest_samples,
                        points: s.points.iter().map(|&(t, v)| (t, v.to_bits())).collect(),
                    })
                    .collect(),
            })
            .collect();
        let rules = self
            .rules
            .rules
            .iter()
            .zip(&self.fingerprints)
            .zip(&h.eval)
            .filter(|(_, states)| states.len() > 0)
            .map(|((rule, fp), states)| SavedRule {
                rule: fp.clone(),
                name: rule.name.clone(),
                states: states
                    .entries()
                    .map(|(key, st)| SavedState {
                        labels: table.index(key),
                        since_ms: st.since_ms,
                        firing: st.firing,
                        seen_ms: st.seen_ms,
                    })
                    .collect(),
            })
            .collect();
        let saved = Saved {
            customer: h.customer.clone(),
            interval_ms: h.interval_ms,
            last_report_ms: h.last_report_ms,
            unreachable: h.unreachable,
            dropped: h.dropped,
            limited: h.limited,
            labels: table.out,
            sources,
            rules,
        };
        let json = serde_json::to_vec(&saved).ok()?;
        let mut out = vec![FORMAT];
        let mut gz = flate2::write::GzEncoder::new(&mut out, Compression::default());
        gz.write_all(&json).ok()?;
        gz.finish().ok()?;
        Some(out)
    }

    /// Replaces `host`'s state with the checkpoint `bytes` (see the module
    /// docs for what is kept when the rules changed), at `now_ms`. A blob of
    /// another format version or a corrupt one is refused and the host's
    /// state left as it was.
    pub fn restore_host(&mut self, host: &str, bytes: &[u8], now_ms: i64) -> Result<Restored, CheckpointError> {
        let (&version, body) = bytes.split_first().ok_or(CheckpointError::Empty)?;
        if version != FORMAT {
            return Err(CheckpointError::Version(version));
        }
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(body)
            .take(MAX_EXPANDED)
            .read_to_end(&mut json)
            .map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
        let saved: Saved = serde_json::from_slice(&json).map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
        let mut restored = Restored::default();
        // One shared key per label set, its strings interned again.
        let labels: Vec<(Labels, Key)> = saved
            .labels
            .into_iter()
            .map(|pairs| {
                let map: Labels = pairs.into_iter().collect();
                let key = self.strings.key(&map);
                (map, key)
            })
            .collect();
        let label = |i: u32| {
            labels
                .get(i as usize)
                .ok_or_else(|| CheckpointError::Corrupt(format!("no label set {i}")))
        };
        let mut h = HostState {
            customer: saved.customer,
            interval_ms: saved.interval_ms,
            last_report_ms: saved.last_report_ms,
            unreachable: saved.unreachable,
            dropped: saved.dropped,
            limited: saved.limited,
            ..HostState::default()
        };
        // The rule set's copy of each source it reads with a window.
        let read: HashMap<&str, &Arc<str>> = self
            .reads
            .iter()
            .flatten()
            .filter(|(_, retention, _)| *retention > 0)
            .map(|(s, _, _)| (s.as_ref(), s))
            .collect();
        let mut work = 0;
        for src in saved.sources {
            let Some(&shared) = read.get(src.source.as_str()) else {
                restored.series_dropped += src.series.len();
                continue;
            };
            let of_source = h.series.entry(shared.clone()).or_default();
            for s in src.series {
                let (map, key) = label(s.labels)?;
                if of_source.find(map, &mut work).is_some() || s.points.is_empty() {
                    continue;
                }
                let skip = s.points.len().saturating_sub(MAX_POINTS);
                let series = Series {
                    points: s.points[skip..]
                        .iter()
                        .map(|&(t, bits)| (t, f64::from_bits(bits)))
                        .collect(),
                    newest_samples: s.newest_samples,
                };
                of_source.insert(key.clone(), series);
                restored.series += 1;
            }
        }
        h.series.retain(|_, of_source| of_source.len() > 0);
        let by_fingerprint: HashMap<&str, usize> = self
            .fingerprints
            .iter()
            .enumerate()
            .rev()
            .map(|(i, f)| (f.as_str(), i))
            .collect();
        h.eval.resize_with(self.rules.rules.len(), ByLabels::default);
        // Continuity across the gap (module docs).
        let gap = now_ms.saturating_sub(h.last_report_ms);
        let continuous = gap <= GONE_AFTER_INTERVALS.saturating_mul(h.interval_ms.max(1000));
        for r in saved.rules {
            let Some(states) = by_fingerprint.get(r.rule.as_str()).and_then(|&i| h.eval.get_mut(i)) else {
                restored.states_dropped += r.states.len();
                continue;
            };
            for st in r.states {
                let (map, key) = label(st.labels)?;
                if states.find(map, &mut work).is_some() {
                    continue;
                }
                let since_ms = if continuous || st.firing { st.since_ms } else { None };
                states.insert(
                    key.clone(),
                    EvalState {
                        since_ms,
                        firing: st.firing,
                        seen_ms: st.seen_ms,
                    },
                );
                restored.states += 1;
            }
        }
        h.live = h.eval.iter().map(ByLabels::len).sum();
        if !h.unreachable {
            h.absent_from_ms = now_ms;
        }
        self.hosts.insert(host.to_string(), h);
        Ok(restored)
    }

    /// Forgets `host`'s state (another replica evaluates it now); whether
    /// there was any.
    pub fn drop_host(&mut self, host: &str) -> bool {
        self.hosts.remove(host).is_some()
    }

    /// Whether the engine holds state for `host`.
    pub fn knows_host(&self, host: &str) -> bool {
        self.hosts.contains_key(host)
    }

    /// The hosts whose state changed since their last checkpoint (or since
    /// they were restored), by name.
    pub fn changed_hosts(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, h)| h.changed)
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// Checkpoints of `hosts` (those still known), marking them saved: hand
    /// them to the store, and give the names back with
    /// [`Engine::mark_changed`] if that fails.
    pub fn checkpoint_hosts(&mut self, hosts: &[String]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::with_capacity(hosts.len());
        for name in hosts {
            if let Some(blob) = self.checkpoint_host(name) {
                out.push((name.clone(), blob));
            }
            if let Some(h) = self.hosts.get_mut(name) {
                h.changed = false;
            }
        }
        out
    }

    /// [`Engine::checkpoint_hosts`] of every [`Engine::changed_hosts`].
    pub fn checkpoint_changed(&mut self) -> Vec<(String, Vec<u8>)> {
        let hosts = self.changed_hosts();
        self.checkpoint_hosts(&hosts)
    }

    /// Marks hosts as changed again (their checkpoints were not stored).
    pub fn mark_changed<'a>(&mut self, hosts: impl IntoIterator<Item = &'a str>) {
        for name in hosts {
            if let Some(h) = self.hosts.get_mut(name) {
                h.changed = true;
            }
        }
    }

    /// The rule set's fingerprint, stored beside each checkpoint: whether
    /// the rules changed since a checkpoint can be told without reading it.
    pub fn rules_fingerprint(&self) -> String {
        set_fingerprint(&self.fingerprints)
    }
}
