//! The case queue's rows: what was decided once per case (`case_meta`:
//! contract, deadlines, assignee, level), its escalations and satisfaction
//! record, and the queue's reads over cases: filtered (status, customer,
//! assignee, severity, a search), counted, ordered by a column and cut into
//! pages here, over every matching case; the SLA order needs the logs and is
//! the domain's, from the facts [`CaseQueue::queue_sla_rows`] gives. Which
//! contract covers a case, who gets it, when it escalates and what closing
//! needs are the domain's (`queue`); this module keeps the rows. The outbox
//! and the sinks' cursors are [`super::outbox`]'s.

use serde::Serialize;

use super::sql::{Dialect, Row, Sql, SqlError, SqlExt, Value, args};

/// Schema on SQLite (the queue's tables, the outbox and the sinks'), applied
/// as one migration by [`crate::store`]; existing stores replay it, so its
/// text does not change.
pub const MIGRATION: &str = r#"
CREATE TABLE case_meta (
    item_id INTEGER PRIMARY KEY REFERENCES items(id),
    source TEXT NOT NULL CHECK (source IN ('detection', 'liveness', 'user')),
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    reported_by TEXT,
    -- NULL: no contract covers the asset; the case is advisory, with no SLA.
    contract TEXT,
    site TEXT NOT NULL DEFAULT '',
    skill TEXT NOT NULL,
    assignee TEXT,
    level TEXT NOT NULL DEFAULT 'L1' CHECK (level IN ('L1', 'L2', 'vendor')),
    response_due_ms INTEGER,
    resolution_due_ms INTEGER,
    response_breached_at_ms INTEGER,
    resolution_breached_at_ms INTEGER
);
CREATE INDEX case_meta_assignee ON case_meta(assignee);
-- Escalations, timed (step = the contract's step index) or by a person
-- (step NULL); a timed step fires once per case.
CREATE TABLE case_escalations (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id),
    step INTEGER,
    at_ms INTEGER NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('notify', 'escalate')),
    target TEXT NOT NULL,
    actor TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX case_escalations_step ON case_escalations(item_id, step) WHERE step IS NOT NULL;
CREATE TABLE case_satisfaction (
    item_id INTEGER PRIMARY KEY REFERENCES items(id),
    score INTEGER CHECK (score BETWEEN 1 AND 5),
    comment TEXT NOT NULL DEFAULT '',
    no_answer INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    recorded_by TEXT NOT NULL
);
-- Every change of a case, in the transaction that made it: the sinks
-- deliver from here, each from its own cursor.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL,
    log_id INTEGER NOT NULL UNIQUE,
    at_ms INTEGER NOT NULL
);
CREATE TRIGGER item_log_to_outbox AFTER INSERT ON item_log
WHEN (SELECT kind FROM items WHERE id = NEW.item_id) = 'case'
BEGIN
    INSERT INTO outbox (item_id, log_id, at_ms) VALUES (NEW.item_id, NEW.id, NEW.at_ms);
END;
CREATE TABLE sink_state (
    sink TEXT PRIMARY KEY,
    delivered_through INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_ok_ms INTEGER
);
-- Changes a sink refused for good (a 4xx other than 429, several times):
-- set aside so the rest still flows, and listed for an engineer.
CREATE TABLE sink_dead (
    sink TEXT NOT NULL,
    outbox_id INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    error TEXT NOT NULL,
    PRIMARY KEY (sink, outbox_id)
);
-- The id of a case's ticket in a sink (Redmine issue, Jira key): later
-- changes update that ticket, a redelivery never opens a second one.
CREATE TABLE case_external (
    item_id INTEGER NOT NULL,
    sink TEXT NOT NULL,
    external_id TEXT NOT NULL,
    PRIMARY KEY (item_id, sink)
);
"#;

/// What the queue's SLA order needs from a case's log, kept on its queue
/// row so the queue need not read the logs (SQLite): when a person first
/// changed the status (`responded_at_ms`, `queue::first_response_ms`), and
/// the stretches that may have paused a clock (`paused`, bits as
/// [`pause_bits`] gives them). Filled in for the cases there are.
pub const MIGRATION_FROM_LOGS: &str = "ALTER TABLE case_meta ADD COLUMN responded_at_ms INTEGER; \
     ALTER TABLE case_meta ADD COLUMN paused INTEGER NOT NULL DEFAULT 0; \
     UPDATE case_meta SET responded_at_ms = (SELECT l.at_ms FROM item_log l WHERE l.item_id = case_meta.item_id \
     AND l.actor LIKE 'person:%' AND l.from_status IS NOT NULL ORDER BY l.id LIMIT 1), \
     paused = coalesce((SELECT sum(DISTINCT CASE l.to_status WHEN 'on_hold:awaiting_customer' THEN 1 \
     WHEN 'on_hold:awaiting_parts' THEN 2 WHEN 'on_hold:awaiting_vendor' THEN 4 WHEN 'on_hold:awaiting_window' THEN 8 \
     ELSE 16 END) FROM item_log l WHERE l.item_id = case_meta.item_id \
     AND l.to_status NOT IN ('new', 'assigned', 'in_progress', 'recovered')), 0);";

/// Whether a log row is a first response's kind: a person changed the
/// status. SQL over `item_log l`.
const RESPONSE_ROW: &str = "l.actor LIKE 'person:%' AND l.from_status IS NOT NULL";

/// The statuses in which every SLA clock runs: a log row into any other
/// may have paused one.
const RUNNING: [&str; 4] = ["new", "assigned", "in_progress", "recovered"];

/// The pause bits of a log row into status `to_status` (as the log writes
/// it, `on_hold:<reason>`): 0 for a status in which the clocks run, bit `i`
/// for on hold for [`PAUSE_HOLDS`]`[i]`, [`PAUSED_OTHERWISE`] for any other.
pub fn pause_bits(to_status: &str) -> i64 {
    if RUNNING.contains(&to_status) {
        return 0;
    }
    to_status
        .strip_prefix("on_hold:")
        .and_then(|reason| PAUSE_HOLDS.iter().position(|h| *h == reason))
        .map_or(PAUSED_OTHERWISE, |bit| 1 << bit)
}

/// SQL for what [`MIGRATION_FROM_LOGS`] fills in, from the log of the case
/// `item` (an SQL expression) names: `(responded_at_ms, paused)`.
fn from_log_sql(item: &str) -> (String, String) {
    let bits: String = PAUSE_HOLDS
        .iter()
        .enumerate()
        .map(|(n, r)| format!("WHEN 'on_hold:{r}' THEN {} ", 1_i64 << n))
        .collect();
    let running = RUNNING.map(|s| format!("'{s}'")).join(", ");
    (
        format!("(SELECT l.at_ms FROM item_log l WHERE l.item_id = {item} AND {RESPONSE_ROW} ORDER BY l.id LIMIT 1)"),
        format!(
            "coalesce((SELECT sum(DISTINCT CASE l.to_status {bits}ELSE {PAUSED_OTHERWISE} END) FROM item_log l \
             WHERE l.item_id = {item} AND l.to_status NOT IN ({running})), 0)"
        ),
    )
}

/// Sets what the SQLite migration [`MIGRATION_FROM_LOGS`] fills in on
/// every queue row from the logs: for stores filled by SQL (benchmarks,
/// timings), not by the collector.
pub fn refill_from_logs(db: &dyn Sql) -> Result<(), SqlError> {
    let (responded, paused) = from_log_sql("case_meta.item_id");
    db.execute(
        &format!("UPDATE case_meta SET responded_at_ms = {responded}, paused = {paused}"),
        args![],
    )?;
    Ok(())
}

// Statuses of an item no longer worked on: the items group's one list.
use super::items::INACTIVE_STATUSES as INACTIVE;

/// A case's queue data as stored; its source is the domain's to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseMetaRow {
    pub item_id: i64,
    pub source: String,
    pub title: String,
    pub description: String,
    pub reported_by: Option<String>,
    /// `None`: no contract covers the asset (advisory).
    pub contract: Option<String>,
    pub site: String,
    pub skill: String,
    pub assignee: Option<String>,
    pub level: String,
    pub response_due_ms: Option<i64>,
    pub resolution_due_ms: Option<i64>,
    pub response_breached_at_ms: Option<i64>,
    pub resolution_breached_at_ms: Option<i64>,
}

const META_COLUMNS: &str = "item_id, source, title, description, reported_by, contract, site, skill, assignee, \
     level, response_due_ms, resolution_due_ms, response_breached_at_ms, resolution_breached_at_ms";

fn meta_row(r: &Row<'_>) -> Result<CaseMetaRow, SqlError> {
    Ok(CaseMetaRow {
        item_id: r.get(0)?,
        source: r.get(1)?,
        title: r.get(2)?,
        description: r.get(3)?,
        reported_by: r.get(4)?,
        contract: r.get(5)?,
        site: r.get(6)?,
        skill: r.get(7)?,
        assignee: r.get(8)?,
        level: r.get(9)?,
        response_due_ms: r.get(10)?,
        resolution_due_ms: r.get(11)?,
        response_breached_at_ms: r.get(12)?,
        resolution_breached_at_ms: r.get(13)?,
    })
}

/// The queue data of a case as it opens (level L1, nobody assigned yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewCaseMeta<'a> {
    pub item_id: i64,
    pub source: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub reported_by: Option<&'a str>,
    pub contract: Option<&'a str>,
    pub site: &'a str,
    pub skill: &'a str,
    pub response_due_ms: Option<i64>,
    pub resolution_due_ms: Option<i64>,
}

/// One of a case's two SLA clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaClock {
    Response,
    Resolution,
}

/// One escalation of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Escalation {
    /// The contract's step index; `None`: by a person.
    pub step: Option<i64>,
    pub at_ms: i64,
    /// `notify` or `escalate`.
    pub action: String,
    pub target: String,
    pub actor: String,
    pub comment: String,
}

/// A recorded satisfaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SatisfactionRecord {
    pub score: Option<u8>,
    pub comment: String,
    pub no_answer: bool,
    pub at_ms: i64,
    pub recorded_by: String,
}

/// Which cases the queue lists: every filter is applied by the store, so
/// counting, ordering and paging see every matching case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSelect<'a> {
    /// A status; `None`: every active case.
    pub status: Option<&'a str>,
    pub customer: Option<&'a str>,
    /// An assignee; `Some("")`: unassigned only.
    pub assignee: Option<&'a str>,
    /// The least severity (`major`: major and critical).
    pub severity_min: Option<&'a str>,
    /// Text looked for, case-insensitively, in the title, the asset, the
    /// component and a disk serial the case's evidence names.
    pub search: Option<&'a str>,
    /// A case number the search names (`#123` or `123`): that case matches
    /// too.
    pub case_id: Option<i64>,
}

/// A column the store orders the queue by (the SLA order needs the logs:
/// it is the domain's, from [`QueueSlaRow`]s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueColumn {
    /// Least to most severe.
    Severity,
    /// Opened earliest first.
    Opened,
    /// Case number.
    Id,
    Asset,
    /// In lifecycle order (new, assigned, in progress, on hold...).
    Status,
    Customer,
    /// By name; unassigned cases last either way.
    Assignee,
}

/// What the store knows of a case's SLA without reading its log: enough
/// for the domain to bound where the case stands, and to tell the cases
/// whose bound is where they stand (see `queue::list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSlaRow {
    pub id: i64,
    pub status: String,
    pub hold_reason: Option<String>,
    pub severity: String,
    pub opened_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    pub contract: Option<String>,
    pub response_due_ms: Option<i64>,
    pub resolution_due_ms: Option<i64>,
    pub response_breached_at_ms: Option<i64>,
    pub resolution_breached_at_ms: Option<i64>,
    /// A person changed the status (the first response; the same test as
    /// `queue::first_response_ms`).
    pub responded: bool,
    /// The stretches of its log that may have paused a clock, as bits
    /// ([`pause_bits`]); 0 if it never left the statuses the clocks run in.
    pub pauses: i64,
}

/// The hold reasons [`pause_bits`] tells apart: bit `i` for
/// on hold for `PAUSE_HOLDS[i]`.
pub const PAUSE_HOLDS: [&str; 4] = [
    "awaiting_customer",
    "awaiting_parts",
    "awaiting_vendor",
    "awaiting_window",
];
/// [`pause_bits`]' bit for every other stretch that may pause
/// a clock: resolved, closed or cancelled (and reopened since), or on hold
/// for a reason not in [`PAUSE_HOLDS`].
pub const PAUSED_OTHERWISE: i64 = 1 << PAUSE_HOLDS.len();
/// `CASE` ranking a severity (column or parameter) 0 (info) to 3 (critical).
fn severity_rank(x: &str) -> String {
    format!("CASE {x} WHEN 'critical' THEN 3 WHEN 'major' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END")
}

/// `CASE` ranking a case's status in lifecycle order.
const STATUS_RANK: &str = "CASE i.status WHEN 'new' THEN 0 WHEN 'assigned' THEN 1 WHEN 'in_progress' THEN 2 \
     WHEN 'on_hold' THEN 3 WHEN 'recovered' THEN 4 WHEN 'resolved' THEN 5 WHEN 'closed' THEN 6 \
     WHEN 'cancelled' THEN 7 ELSE 8 END";

/// The queue's `FROM` and `WHERE`, parameters `?1` to `?6` from
/// [`select_args`]. The search patterns are expressions, not bare
/// parameters (see `holds::KNOWN_BY_IDENTIFIER`); `!` escapes in them. A
/// serial is found from its start in the evidence's labels (`"serial":"…`,
/// as the evidence is stored, compact).
fn queue_from(s: &QueueSelect<'_>) -> String {
    let mut sql = format!(
        "FROM items i JOIN case_meta m ON m.item_id = i.id WHERE i.kind = 'case' \
         AND (CAST(?1 AS TEXT) IS NULL OR i.status = ?1) AND (CAST(?2 AS TEXT) IS NULL OR i.customer = ?2) \
         AND (CAST(?3 AS TEXT) IS NULL OR coalesce(m.assignee, '') = ?3) \
         AND (CAST(?4 AS TEXT) IS NULL OR {} >= {}) \
         AND (CAST(?5 AS TEXT) IS NULL OR lower(m.title) LIKE ('%' || ?5 || '%') ESCAPE '!' \
         OR lower(i.asset) LIKE ('%' || ?5 || '%') ESCAPE '!' OR lower(i.component) LIKE ('%' || ?5 || '%') ESCAPE '!' \
         OR lower(i.evidence) LIKE ('%\"serial\":\"' || ?5 || '%') ESCAPE '!' OR i.id = CAST(?6 AS BIGINT))",
        severity_rank("i.severity"),
        severity_rank("?4")
    );
    if s.status.is_none() {
        sql.push_str(&format!(" AND i.status NOT IN {INACTIVE}"));
    }
    sql
}

fn select_args<'a>(s: &QueueSelect<'a>) -> Vec<Value<'a>> {
    let search = s
        .search
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| super::holds::like_escaped(&t.to_lowercase()));
    vec![
        Value::from(s.status),
        Value::from(s.customer),
        Value::from(s.assignee),
        Value::from(s.severity_min),
        Value::from(search),
        Value::from(s.case_id),
    ]
}

/// Per customer with active cases under contract: how many have breached
/// an SLA clock, and how many nobody is assigned to (for /metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub customer: String,
    pub breached: u64,
    pub unassigned: u64,
}

/// The case queue's rows.
pub trait CaseQueue: Sql {
    /// The queue data of case `item_id`, once it has been settled.
    fn case_meta(&self, item_id: i64) -> Result<Option<CaseMetaRow>, SqlError> {
        self.query_opt(
            &format!("SELECT {META_COLUMNS} FROM case_meta WHERE item_id = ?1"),
            args![item_id],
            meta_row,
        )
    }

    /// The labels (a JSON object) of the agent reporting as `host`, the one
    /// seen last when several do.
    fn host_labels(&self, host: &str) -> Result<Option<String>, SqlError> {
        self.value(
            "SELECT labels FROM agents WHERE host = ?1 ORDER BY last_seen_ms IS NULL, last_seen_ms DESC LIMIT 1",
            args![host],
        )
    }

    fn add_case_meta(&self, m: &NewCaseMeta<'_>) -> Result<(), SqlError> {
        self.execute(
            &{
                // A case's log may be ahead of its queue row (a replica
                // settles the row after the case was worked on).
                let (responded, paused) = from_log_sql("?1");
                format!(
                    "INSERT INTO case_meta (item_id, source, title, description, reported_by, contract, site, skill, \
                     response_due_ms, resolution_due_ms, responded_at_ms, paused) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, {responded}, {paused})"
                )
            },
            args![
                m.item_id,
                m.source,
                m.title,
                m.description,
                m.reported_by,
                m.contract,
                m.site,
                m.skill,
                m.response_due_ms,
                m.resolution_due_ms
            ],
        )?;
        Ok(())
    }

    /// Active cases assigned to `who`.
    fn active_cases_of(&self, who: &str) -> Result<i64, SqlError> {
        self.query_one(
            &format!(
                "SELECT count(*) FROM case_meta m JOIN items i ON i.id = m.item_id \
                 WHERE m.assignee = ?1 AND i.status NOT IN {INACTIVE}"
            ),
            args![who],
            |r| r.get(0),
        )
    }

    fn set_case_assignee(&self, item_id: i64, who: &str) -> Result<(), SqlError> {
        self.execute(
            "UPDATE case_meta SET assignee = ?2 WHERE item_id = ?1",
            args![item_id, who],
        )?;
        Ok(())
    }

    /// Cases without queue data, in id order: those newer than the newest
    /// one with it, and those with log rows after `since_log_id` (the
    /// caller's transaction's own: on PostgreSQL another replica's
    /// transaction may commit a newer case with its queue data first).
    fn cases_without_meta(&self, since_log_id: i64) -> Result<Vec<i64>, SqlError> {
        self.query(
            "SELECT i.id FROM items i WHERE i.id > (SELECT coalesce(max(item_id), 0) FROM case_meta) \
             AND i.kind = 'case' \
             UNION \
             SELECT DISTINCT l.item_id FROM item_log l JOIN items i ON i.id = l.item_id \
             WHERE l.id > ?1 AND i.kind = 'case' \
             AND NOT EXISTS (SELECT 1 FROM case_meta m WHERE m.item_id = l.item_id) \
             ORDER BY 1",
            args![since_log_id],
            |r| r.get(0),
        )
    }

    /// Cases reopened (log rows after `since_log_id`), new again and with an
    /// assignee: `(case, assignee)` in id order.
    fn reopened_assigned_cases(&self, since_log_id: i64) -> Result<Vec<(i64, String)>, SqlError> {
        self.query(
            "SELECT DISTINCT i.id, m.assignee FROM item_log l JOIN items i ON i.id = l.item_id \
             JOIN case_meta m ON m.item_id = i.id \
             WHERE l.id > ?1 AND l.comment = 'reopened' AND i.kind = 'case' AND i.status = 'new' \
             AND m.assignee IS NOT NULL ORDER BY i.id",
            args![since_log_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Active cases no contract covered when they opened, in id order.
    fn active_cases_without_contract(&self) -> Result<Vec<i64>, SqlError> {
        self.query(
            &format!(
                "SELECT i.id FROM items i JOIN case_meta m ON m.item_id = i.id \
                 WHERE i.kind = 'case' AND m.contract IS NULL AND i.status NOT IN {INACTIVE} ORDER BY i.id"
            ),
            args![],
            |r| r.get(0),
        )
    }

    /// Active cases under a contract, in id order.
    fn active_cases_under_contract(&self) -> Result<Vec<i64>, SqlError> {
        self.query(
            &format!(
                "SELECT i.id FROM items i JOIN case_meta m ON m.item_id = i.id \
                 WHERE i.kind = 'case' AND m.contract IS NOT NULL AND i.status NOT IN {INACTIVE} ORDER BY i.id"
            ),
            args![],
            |r| r.get(0),
        )
    }

    /// Gives a case its contract and the deadlines fixed by it.
    fn set_case_contract(
        &self,
        item_id: i64,
        contract: &str,
        response_due_ms: Option<i64>,
        resolution_due_ms: Option<i64>,
    ) -> Result<(), SqlError> {
        self.execute(
            "UPDATE case_meta SET contract = ?2, response_due_ms = ?3, resolution_due_ms = ?4 WHERE item_id = ?1",
            args![item_id, contract, response_due_ms, resolution_due_ms],
        )?;
        Ok(())
    }

    /// Records when a case's SLA clock was found breached.
    fn set_sla_breached(&self, item_id: i64, clock: SlaClock, at_ms: i64) -> Result<(), SqlError> {
        let sql = match clock {
            SlaClock::Response => "UPDATE case_meta SET response_breached_at_ms = ?2 WHERE item_id = ?1",
            SlaClock::Resolution => "UPDATE case_meta SET resolution_breached_at_ms = ?2 WHERE item_id = ?1",
        };
        self.execute(sql, args![item_id, at_ms])?;
        Ok(())
    }

    fn set_case_level(&self, item_id: i64, level: &str) -> Result<(), SqlError> {
        self.execute(
            "UPDATE case_meta SET level = ?2 WHERE item_id = ?1",
            args![item_id, level],
        )?;
        Ok(())
    }

    /// Resolved cases without a satisfaction record, resolved at or before
    /// `resolved_by_ms`.
    fn resolved_cases_without_satisfaction(&self, resolved_by_ms: i64) -> Result<Vec<i64>, SqlError> {
        self.query(
            "SELECT i.id FROM items i LEFT JOIN case_satisfaction s ON s.item_id = i.id \
             WHERE i.kind = 'case' AND i.status = 'resolved' AND s.item_id IS NULL AND i.resolved_at_ms <= ?1 \
             ORDER BY i.id",
            args![resolved_by_ms],
            |r| r.get(0),
        )
    }

    /// The contract's escalation steps that have fired for a case.
    fn fired_escalation_steps(&self, item_id: i64) -> Result<Vec<i64>, SqlError> {
        self.query(
            "SELECT step FROM case_escalations WHERE item_id = ?1 AND step IS NOT NULL",
            args![item_id],
            |r| r.get(0),
        )
    }

    /// Records an escalation; a timed step (`step` set) a second time is
    /// refused (unique).
    fn add_escalation(&self, item_id: i64, e: &Escalation) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO case_escalations (item_id, step, at_ms, action, target, actor, comment) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![item_id, e.step, e.at_ms, &e.action, &e.target, &e.actor, &e.comment],
        )?;
        Ok(())
    }

    /// A case's escalations, oldest first.
    fn case_escalations(&self, item_id: i64) -> Result<Vec<Escalation>, SqlError> {
        self.query(
            "SELECT step, at_ms, action, target, actor, comment FROM case_escalations WHERE item_id = ?1 ORDER BY id",
            args![item_id],
            |r| {
                Ok(Escalation {
                    step: r.get(0)?,
                    at_ms: r.get(1)?,
                    action: r.get(2)?,
                    target: r.get(3)?,
                    actor: r.get(4)?,
                    comment: r.get(5)?,
                })
            },
        )
    }

    /// Records a case's satisfaction; a second record is refused (unique).
    fn add_satisfaction(&self, item_id: i64, s: &SatisfactionRecord) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO case_satisfaction (item_id, score, comment, no_answer, at_ms, recorded_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![item_id, s.score, &s.comment, s.no_answer, s.at_ms, &s.recorded_by],
        )?;
        Ok(())
    }

    fn case_satisfaction(&self, item_id: i64) -> Result<Option<SatisfactionRecord>, SqlError> {
        self.query_opt(
            "SELECT score, comment, no_answer, at_ms, recorded_by FROM case_satisfaction WHERE item_id = ?1",
            args![item_id],
            |r| {
                Ok(SatisfactionRecord {
                    score: r.get(0)?,
                    comment: r.get(1)?,
                    no_answer: r.get(2)?,
                    at_ms: r.get(3)?,
                    recorded_by: r.get(4)?,
                })
            },
        )
    }

    /// Whether a service report names case `item_id`.
    fn case_has_service_report(&self, item_id: i64) -> Result<bool, SqlError> {
        Ok(self
            .query_opt(
                "SELECT 1 FROM service_reports WHERE case_id = ?1 LIMIT 1",
                args![item_id],
                |_| Ok(()),
            )?
            .is_some())
    }

    /// How many cases the queue shows for `s`.
    fn queue_count(&self, s: &QueueSelect<'_>) -> Result<i64, SqlError> {
        let sql = format!("SELECT count(*) {}", queue_from(s));
        self.query_one(&sql, &select_args(s), |r| r.get(0))
    }

    /// One page of the cases the queue shows for `s`, ordered by `by`
    /// (then by case number), `limit` cases after the first `offset`.
    fn queue_page_ids(
        &self,
        s: &QueueSelect<'_>,
        by: QueueColumn,
        descending: bool,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<i64>, SqlError> {
        let dir = if descending { "DESC" } else { "ASC" };
        let order = match by {
            QueueColumn::Severity => format!("{} {dir}, i.opened_at_ms ASC, i.id ASC", severity_rank("i.severity")),
            QueueColumn::Opened => format!("i.opened_at_ms {dir}, i.id {dir}"),
            QueueColumn::Id => format!("i.id {dir}"),
            QueueColumn::Asset => format!("i.asset {dir}, i.id ASC"),
            QueueColumn::Status => format!("{STATUS_RANK} {dir}, i.id ASC"),
            QueueColumn::Customer => format!("i.customer {dir}, i.id ASC"),
            QueueColumn::Assignee => {
                format!("CASE WHEN m.assignee IS NULL THEN 1 ELSE 0 END, m.assignee {dir}, i.id ASC")
            }
        };
        let sql = format!("SELECT i.id {} ORDER BY {order} LIMIT ?7 OFFSET ?8", queue_from(s));
        let mut a = select_args(s);
        a.extend([Value::from(limit), Value::from(offset)]);
        self.query(&sql, &a, |r| r.get(0))
    }

    /// The SLA facts of every case the queue shows for `s`, in no order.
    fn queue_sla_rows(&self, s: &QueueSelect<'_>) -> Result<Vec<QueueSlaRow>, SqlError> {
        let sql = format!(
            "SELECT i.id, i.status, i.hold_reason, i.severity, i.opened_at_ms, i.resolved_at_ms, m.contract, \
             m.response_due_ms, m.resolution_due_ms, m.response_breached_at_ms, m.resolution_breached_at_ms, \
             m.responded_at_ms, m.paused {}",
            queue_from(s)
        );
        self.query(&sql, &select_args(s), |r| {
            Ok(QueueSlaRow {
                id: r.get(0)?,
                status: r.get(1)?,
                hold_reason: r.get(2)?,
                severity: r.get(3)?,
                opened_at_ms: r.get(4)?,
                resolved_at_ms: r.get(5)?,
                contract: r.get(6)?,
                response_due_ms: r.get(7)?,
                resolution_due_ms: r.get(8)?,
                response_breached_at_ms: r.get(9)?,
                resolution_breached_at_ms: r.get(10)?,
                responded: r.get::<Option<i64>>(11)?.is_some(),
                pauses: r.get(12)?,
            })
        })
    }

    /// The queue data of those of the cases `ids` that have it, in no order.
    fn case_metas(&self, ids: &[i64]) -> Result<Vec<CaseMetaRow>, SqlError> {
        self.query_ids(
            &format!("SELECT {META_COLUMNS} FROM case_meta WHERE item_id IN ({{ids}})"),
            ids,
            meta_row,
        )
    }

    /// Whether the store has the queue's tables (an SQLite store written by
    /// an older version and opened read-only has not).
    fn has_queue_tables(&self) -> Result<bool, SqlError> {
        match self.dialect() {
            Dialect::Postgres => Ok(true),
            Dialect::Sqlite => Ok(self
                .query_opt(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'case_meta'",
                    args![],
                    |_| Ok(()),
                )?
                .is_some()),
        }
    }

    /// The customer's cases under contract that ended in `[from, to)`
    /// (cancelled ones aside): `(how many, how many with neither SLA clock
    /// breached)`.
    fn sla_outcomes(&self, customer: &str, from_ms: i64, to_ms: i64) -> Result<(i64, i64), SqlError> {
        self.query_one(
            "SELECT count(*), CAST(coalesce(sum(CASE WHEN m.response_breached_at_ms IS NULL \
             AND m.resolution_breached_at_ms IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM items i JOIN case_meta m ON m.item_id = i.id \
             WHERE i.kind = 'case' AND i.customer = ?1 AND m.contract IS NOT NULL \
             AND i.resolved_at_ms >= ?2 AND i.resolved_at_ms < ?3 AND i.status NOT LIKE 'cancelled%'",
            args![customer, from_ms, to_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// The satisfaction records of the customer's cases made in
    /// `[from, to)`, oldest first.
    fn customer_satisfaction(
        &self,
        customer: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<SatisfactionRecord>, SqlError> {
        self.query(
            "SELECT s.score, s.comment, s.no_answer, s.at_ms, s.recorded_by \
             FROM case_satisfaction s JOIN items i ON i.id = s.item_id \
             WHERE i.customer = ?1 AND s.at_ms >= ?2 AND s.at_ms < ?3 ORDER BY s.at_ms",
            args![customer, from_ms, to_ms],
            |r| {
                Ok(SatisfactionRecord {
                    score: r.get(0)?,
                    comment: r.get(1)?,
                    no_answer: r.get(2)?,
                    at_ms: r.get(3)?,
                    recorded_by: r.get(4)?,
                })
            },
        )
    }

    /// Breached and unassigned active cases under contract per customer.
    fn queue_counts(&self) -> Result<Vec<QueueCounts>, SqlError> {
        self.query(
            &format!(
                "SELECT i.customer, \
                 CAST(sum(CASE WHEN m.response_breached_at_ms IS NOT NULL \
                 OR m.resolution_breached_at_ms IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT), \
                 CAST(sum(CASE WHEN m.assignee IS NULL THEN 1 ELSE 0 END) AS BIGINT) \
                 FROM items i JOIN case_meta m ON m.item_id = i.id \
                 WHERE i.kind = 'case' AND m.contract IS NOT NULL AND i.status NOT IN {INACTIVE} \
                 GROUP BY i.customer ORDER BY i.customer"
            ),
            args![],
            |r| {
                Ok(QueueCounts {
                    customer: r.get(0)?,
                    breached: r.get::<i64>(1)?.try_into().unwrap_or(0),
                    unassigned: r.get::<i64>(2)?.try_into().unwrap_or(0),
                })
            },
        )
    }
}

impl<S: Sql + ?Sized> CaseQueue for S {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::testing::{add_agent, on_both};

    /// A case item of `customer` on `asset` in `status`; its id.
    fn add_case(db: &dyn Sql, customer: &str, asset: &str, status: &str, resolved_at_ms: Option<i64>) -> i64 {
        db.query_one(
            "INSERT INTO items (kind, customer, asset, check_name, component, status, severity, rule, \
             opened_at_ms, updated_at_ms, last_firing_at_ms, resolved_at_ms, occurrences, evidence) \
             VALUES ('case', ?1, ?2, 'disk_failing', ?3, ?4, 'major', 'disk_failing', 0, 0, 0, ?5, 1, '{}') \
             RETURNING id",
            args![
                customer,
                asset,
                format!("{asset}/{status}/{resolved_at_ms:?}"),
                status,
                resolved_at_ms
            ],
            |r| r.get(0),
        )
        .unwrap()
    }

    fn opened(item_id: i64, contract: Option<&str>) -> NewCaseMeta<'_> {
        NewCaseMeta {
            item_id,
            source: "detection",
            title: "disk failing",
            description: "",
            reported_by: None,
            contract,
            site: "hq",
            skill: "hardware",
            response_due_ms: contract.map(|_| 1_000),
            resolution_due_ms: contract.map(|_| 9_000),
        }
    }

    fn escalation(step: Option<i64>, at_ms: i64, action: &str, target: &str) -> Escalation {
        Escalation {
            step,
            at_ms,
            action: action.into(),
            target: target.into(),
            actor: "rule:sla".into(),
            comment: "50% of resolution time used".into(),
        }
    }

    #[test]
    fn the_pauses_of_a_case_are_its_holds_by_reason_and_its_ends() {
        on_both(|db| {
            use crate::store::items::{Items, NewLog};
            let log = |item_id, from: Option<&str>, to| {
                db.append_log(&NewLog {
                    item_id,
                    at_ms: 1,
                    actor: "person:ana",
                    from_status: from,
                    to_status: to,
                    comment: None,
                    visibility: "internal",
                })
                .unwrap();
            };
            let ids: Vec<i64> = (0..5)
                .map(|n| add_case(db, "acme", &format!("db{n}"), "in_progress", None))
                .collect();
            // Three get their queue row first, two after their log.
            for id in &ids[..3] {
                db.add_case_meta(&opened(*id, Some("x"))).unwrap();
            }
            for id in &ids {
                log(*id, None, "new");
                log(*id, Some("new"), "in_progress");
            }
            // Held for parts, then for the customer; resolved and reopened;
            // held for a reason this build does not tell apart.
            log(ids[1], Some("in_progress"), "on_hold:awaiting_parts");
            log(ids[1], Some("on_hold:awaiting_parts"), "on_hold:awaiting_customer");
            log(ids[1], Some("on_hold:awaiting_customer"), "on_hold:awaiting_parts");
            log(ids[2], Some("in_progress"), "resolved");
            log(ids[2], Some("resolved"), "new");
            log(ids[3], Some("in_progress"), "on_hold:awaiting_godot");
            for id in &ids[3..] {
                db.add_case_meta(&opened(*id, Some("x"))).unwrap();
            }
            let customer = 1 << PAUSE_HOLDS.iter().position(|h| *h == "awaiting_customer").unwrap();
            let parts = 1 << PAUSE_HOLDS.iter().position(|h| *h == "awaiting_parts").unwrap();
            let want = vec![
                (ids[0], 0),
                (ids[1], customer | parts),
                (ids[2], PAUSED_OTHERWISE),
                (ids[3], PAUSED_OTHERWISE),
                (ids[4], 0),
            ];
            let pauses = || {
                let mut got: Vec<(i64, i64)> = db
                    .queue_sla_rows(&QueueSelect::default())
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.id, r.pauses))
                    .collect();
                got.sort_unstable();
                got
            };
            assert_eq!(pauses(), want, "as the log was written");
            refill_from_logs(db).unwrap();
            assert_eq!(pauses(), want, "from the logs");
        });
    }

    /// Cases read many at once (the queue's pages): past one statement's
    /// worth of ids, with ids no case has and one asked twice, each item,
    /// queue row and log comes once, each log in order.
    #[test]
    fn many_cases_are_read_at_once_each_with_its_queue_row_and_log() {
        use crate::store::items::{Items, NewLog};
        on_both(|db| {
            let ids: Vec<i64> = (0..130)
                .map(|n| add_case(db, "acme", &format!("db{n}"), "in_progress", None))
                .collect();
            for (n, id) in ids.iter().enumerate() {
                db.add_case_meta(&opened(*id, Some("x"))).unwrap();
                for at_ms in 0..(n % 3) as i64 + 1 {
                    db.append_log(&NewLog {
                        item_id: *id,
                        at_ms,
                        actor: "person:ana",
                        from_status: Some("new"),
                        to_status: "in_progress",
                        comment: None,
                        visibility: "internal",
                    })
                    .unwrap();
                }
            }
            let mut asked: Vec<i64> = ids.iter().rev().copied().collect();
            asked.extend([1_000_000, -7]);
            let mut items: Vec<i64> = db.load_items(&asked).unwrap().into_iter().map(|r| r.id).collect();
            items.sort_unstable();
            assert_eq!(items, ids);
            let logs = db.item_logs(&asked).unwrap();
            for (n, id) in ids.iter().enumerate() {
                let times: Vec<i64> = logs.iter().filter(|l| l.item_id == *id).map(|l| l.at_ms).collect();
                assert_eq!(times, (0..(n % 3) as i64 + 1).collect::<Vec<_>>(), "case {n}");
            }
            let mut metas: Vec<i64> = db.case_metas(&asked).unwrap().into_iter().map(|m| m.item_id).collect();
            metas.sort_unstable();
            assert_eq!(metas, ids);
        });
    }

    #[test]
    fn a_log_rows_pause_bits_are_its_hold_or_any_other_stop() {
        assert_eq!(pause_bits("in_progress"), 0);
        assert_eq!(pause_bits("recovered"), 0);
        assert_eq!(pause_bits("on_hold:awaiting_customer"), 1);
        assert_eq!(pause_bits("on_hold:awaiting_window"), 8);
        assert_eq!(pause_bits("on_hold:awaiting_godot"), PAUSED_OTHERWISE);
        assert_eq!(pause_bits("resolved"), PAUSED_OTHERWISE);
    }

    #[test]
    fn the_inactive_statuses_are_the_cases_stores() {
        assert_eq!(INACTIVE, crate::store::items::INACTIVE_STATUSES);
    }

    #[test]
    fn a_case_is_settled_once_then_assigned_escalated_and_breached() {
        on_both(|db| {
            assert!(db.has_queue_tables().unwrap());
            let id = add_case(db, "acme", "db01", "new", None);
            assert_eq!(db.cases_without_meta(0).unwrap(), [id]);
            assert_eq!(db.case_meta(id).unwrap(), None);
            db.add_case_meta(&opened(id, Some("acme-office"))).unwrap();
            assert!(db.cases_without_meta(0).unwrap().is_empty());
            let m = db.case_meta(id).unwrap().unwrap();
            assert_eq!(
                (
                    m.source.as_str(),
                    m.contract.as_deref(),
                    m.level.as_str(),
                    m.assignee.as_deref()
                ),
                ("detection", Some("acme-office"), "L1", None)
            );
            assert_eq!((m.response_due_ms, m.resolution_due_ms), (Some(1_000), Some(9_000)));
            assert_eq!(db.queue_counts().unwrap()[0].unassigned, 1);

            assert_eq!(db.active_cases_of("ana").unwrap(), 0);
            db.set_case_assignee(id, "ana").unwrap();
            assert_eq!(db.active_cases_of("ana").unwrap(), 1);

            // A timed step fires once; a person's escalations are not steps.
            db.add_escalation(id, &escalation(Some(0), 10, "notify", "team-lead"))
                .unwrap();
            assert!(
                db.add_escalation(id, &escalation(Some(0), 11, "notify", "team-lead"))
                    .unwrap_err()
                    .is_unique_violation()
            );
            db.add_escalation(id, &escalation(None, 12, "escalate", "L2")).unwrap();
            db.add_escalation(id, &escalation(None, 13, "escalate", "vendor"))
                .unwrap();
            db.set_case_level(id, "vendor").unwrap();
            assert_eq!(db.fired_escalation_steps(id).unwrap(), [0]);
            let all = db.case_escalations(id).unwrap();
            assert_eq!(all.iter().map(|e| e.at_ms).collect::<Vec<_>>(), [10, 12, 13]);
            assert_eq!(all[0], escalation(Some(0), 10, "notify", "team-lead"));

            db.set_sla_breached(id, SlaClock::Resolution, 20).unwrap();
            let m = db.case_meta(id).unwrap().unwrap();
            assert_eq!((m.level.as_str(), m.assignee.as_deref()), ("vendor", Some("ana")));
            assert_eq!(
                (m.response_breached_at_ms, m.resolution_breached_at_ms),
                (None, Some(20))
            );
            assert_eq!(
                db.queue_counts().unwrap(),
                [QueueCounts {
                    customer: "acme".into(),
                    breached: 1,
                    unassigned: 0
                }]
            );
            assert_eq!(db.active_cases_under_contract().unwrap(), [id]);
            assert!(db.active_cases_without_contract().unwrap().is_empty());
        });
    }

    #[test]
    fn an_advisory_case_comes_under_contract_when_one_matches() {
        on_both(|db| {
            let id = add_case(db, "acme", "db01", "new", None);
            let done = add_case(db, "acme", "db02", "resolved", Some(5));
            db.add_case_meta(&opened(id, None)).unwrap();
            db.add_case_meta(&opened(done, None)).unwrap();
            assert!(db.case_meta(id).unwrap().unwrap().contract.is_none());
            // Only active cases are matched again; advice is not counted.
            assert_eq!(db.active_cases_without_contract().unwrap(), [id]);
            assert!(db.queue_counts().unwrap().is_empty());
            db.set_case_contract(id, "acme-office", Some(100), None).unwrap();
            let m = db.case_meta(id).unwrap().unwrap();
            assert_eq!(
                (m.contract.as_deref(), m.response_due_ms, m.resolution_due_ms),
                (Some("acme-office"), Some(100), None)
            );
            assert!(db.active_cases_without_contract().unwrap().is_empty());
        });
    }

    #[test]
    fn a_resolved_case_waits_for_one_satisfaction_record() {
        on_both(|db| {
            let id = add_case(db, "acme", "db01", "resolved", Some(100));
            let other = add_case(db, "globex", "web01", "resolved", Some(100));
            db.add_case_meta(&opened(id, Some("acme-office"))).unwrap();
            assert_eq!(db.resolved_cases_without_satisfaction(99).unwrap(), Vec::<i64>::new());
            assert_eq!(db.resolved_cases_without_satisfaction(100).unwrap(), [id, other]);
            let rec = SatisfactionRecord {
                score: Some(4),
                comment: "quick".into(),
                no_answer: false,
                at_ms: 150,
                recorded_by: "person:ana".into(),
            };
            db.add_satisfaction(id, &rec).unwrap();
            assert!(db.add_satisfaction(id, &rec).unwrap_err().is_unique_violation());
            let silent = SatisfactionRecord {
                score: None,
                comment: String::new(),
                no_answer: true,
                at_ms: 160,
                recorded_by: "rule:satisfaction".into(),
            };
            db.add_satisfaction(other, &silent).unwrap();
            assert_eq!(db.case_satisfaction(id).unwrap(), Some(rec.clone()));
            assert_eq!(db.case_satisfaction(other).unwrap(), Some(silent));
            assert!(db.resolved_cases_without_satisfaction(1_000).unwrap().is_empty());
            assert_eq!(db.customer_satisfaction("acme", 100, 200).unwrap(), [rec]);
            assert!(db.customer_satisfaction("acme", 151, 200).unwrap().is_empty());
            // Met: resolved in the period under contract, neither clock breached.
            assert_eq!(db.sla_outcomes("acme", 0, 200).unwrap(), (1, 1));
            db.set_sla_breached(id, SlaClock::Response, 50).unwrap();
            assert_eq!(db.sla_outcomes("acme", 0, 200).unwrap(), (1, 0));
            assert_eq!(db.sla_outcomes("acme", 101, 200).unwrap(), (0, 0));
            assert_eq!(db.sla_outcomes("globex", 0, 200).unwrap(), (0, 0));
        });
    }

    #[test]
    fn the_queue_selects_by_status_customer_and_assignee() {
        on_both(|db| {
            let a = add_case(db, "acme", "db01", "new", None);
            let b = add_case(db, "acme", "db02", "assigned", None);
            let c = add_case(db, "globex", "web01", "resolved", Some(5));
            let unsettled = add_case(db, "acme", "db03", "new", None);
            for id in [a, b, c] {
                db.add_case_meta(&opened(id, Some("x"))).unwrap();
            }
            db.set_case_assignee(b, "ben").unwrap();
            let ids = |s: QueueSelect<'_>| db.queue_page_ids(&s, QueueColumn::Id, true, 100, 0).unwrap();
            assert_eq!(ids(QueueSelect::default()), [b, a]);
            assert!(!ids(QueueSelect::default()).contains(&unsettled));
            let resolved = QueueSelect {
                status: Some("resolved"),
                ..QueueSelect::default()
            };
            assert_eq!(ids(resolved), [c]);
            let globex = QueueSelect {
                customer: Some("globex"),
                ..QueueSelect::default()
            };
            assert!(ids(globex).is_empty());
            let unassigned = QueueSelect {
                assignee: Some(""),
                ..QueueSelect::default()
            };
            assert_eq!(ids(unassigned), [a]);
            let bens = QueueSelect {
                assignee: Some("ben"),
                customer: Some("acme"),
                ..QueueSelect::default()
            };
            assert_eq!(ids(bens), [b]);
        });
    }

    /// A case for the listing tests: severity, opening time, status and
    /// evidence as given; its queue data titled `title`.
    #[allow(clippy::too_many_arguments)]
    fn listed_case(
        db: &dyn Sql,
        customer: &str,
        asset: &str,
        severity: &str,
        status: &str,
        opened_at_ms: i64,
        title: &str,
        evidence: &str,
    ) -> i64 {
        let id: i64 = db
            .query_one(
                "INSERT INTO items (kind, customer, asset, check_name, component, status, severity, rule, \
                 opened_at_ms, updated_at_ms, last_firing_at_ms, occurrences, evidence) \
                 VALUES ('case', ?1, ?2, 'disk_failing', ?3, ?4, ?5, 'disk_failing', ?6, ?6, ?6, 1, ?7) \
                 RETURNING id",
                args![customer, asset, title, status, severity, opened_at_ms, evidence],
                |r| r.get(0),
            )
            .unwrap();
        db.add_case_meta(&NewCaseMeta {
            title,
            ..opened(id, Some("x"))
        })
        .unwrap();
        id
    }

    /// Regression: the queue read at most 5,000 cases, newest first, and
    /// filtered and ordered those; now the store counts, orders and pages
    /// every matching case.
    #[test]
    fn the_queue_counts_orders_and_pages_every_matching_case() {
        on_both(|db| {
            let severities = ["info", "warning", "major", "critical"];
            let statuses = ["new", "assigned", "in_progress", "on_hold"];
            let mut all = Vec::new();
            for n in 0..120_i64 {
                let (customer, asset) = if n % 3 == 0 {
                    ("globex", "web01")
                } else {
                    ("acme", "db01")
                };
                let evidence = if n == 7 {
                    r#"{"labels":{"device":"/dev/sdb","serial":"WD-WCC4E1234567"}}"#
                } else {
                    "{}"
                };
                let title = format!("Fault {n:03}");
                let id = listed_case(
                    db,
                    customer,
                    asset,
                    severities[(n % 4) as usize],
                    statuses[(n % 4) as usize],
                    1_000 + (n * 37) % 120,
                    &title,
                    evidence,
                );
                if n % 5 == 0 {
                    db.set_case_assignee(id, if n % 2 == 0 { "ana" } else { "bo" }).unwrap();
                }
                all.push(id);
            }
            let ended = listed_case(db, "acme", "db01", "critical", "resolved", 0, "Fault done", "{}");
            let every = QueueSelect::default();
            assert_eq!(db.queue_count(&every).unwrap(), 120);
            // Three pages of 50 hold every case once.
            let mut paged = Vec::new();
            for (offset, len) in [(0, 50), (50, 50), (100, 20)] {
                let page = db.queue_page_ids(&every, QueueColumn::Id, false, 50, offset).unwrap();
                assert_eq!(page.len(), len, "offset {offset}");
                paged.extend(page);
            }
            assert_eq!(paged, all);
            assert!(
                db.queue_page_ids(&every, QueueColumn::Id, false, 50, 150)
                    .unwrap()
                    .is_empty()
            );
            let resolved = QueueSelect {
                status: Some("resolved"),
                ..QueueSelect::default()
            };
            assert_eq!(
                db.queue_page_ids(&resolved, QueueColumn::Id, false, 50, 0).unwrap(),
                [ended]
            );

            // Each column orders every case, either way.
            let rows = db.queue_sla_rows(&every).unwrap();
            assert_eq!(rows.len(), 120);
            let meta: std::collections::HashMap<i64, CaseMetaRow> = all
                .iter()
                .map(|id| (*id, db.case_meta(*id).unwrap().unwrap()))
                .collect();
            let rank = |s: &str| severities.iter().position(|x| *x == s).unwrap();
            let status_rank = |s: &str| statuses.iter().position(|x| *x == s).unwrap();
            let by_id: std::collections::HashMap<i64, &QueueSlaRow> = rows.iter().map(|r| (r.id, r)).collect();
            let customer_of = |id: i64| {
                if all.iter().position(|x| *x == id).unwrap() % 3 == 0 {
                    "globex"
                } else {
                    "acme"
                }
            };
            for (column, descending) in [
                (QueueColumn::Severity, false),
                (QueueColumn::Severity, true),
                (QueueColumn::Opened, false),
                (QueueColumn::Opened, true),
                (QueueColumn::Id, true),
                (QueueColumn::Asset, false),
                (QueueColumn::Asset, true),
                (QueueColumn::Status, false),
                (QueueColumn::Status, true),
                (QueueColumn::Customer, false),
                (QueueColumn::Customer, true),
                (QueueColumn::Assignee, false),
                (QueueColumn::Assignee, true),
            ] {
                let ids = db.queue_page_ids(&every, column, descending, 200, 0).unwrap();
                assert_eq!(ids.len(), 120, "{column:?}");
                let mut want = all.clone();
                want.sort_by(|a, b| {
                    let (ra, rb) = (by_id[a], by_id[b]);
                    let way = |o: std::cmp::Ordering| if descending { o.reverse() } else { o };
                    match column {
                        QueueColumn::Severity => way(rank(&ra.severity).cmp(&rank(&rb.severity)))
                            .then(ra.opened_at_ms.cmp(&rb.opened_at_ms))
                            .then(a.cmp(b)),
                        QueueColumn::Opened => way(ra.opened_at_ms.cmp(&rb.opened_at_ms).then(a.cmp(b))),
                        QueueColumn::Id => way(a.cmp(b)),
                        QueueColumn::Asset => {
                            let asset = |id: i64| if customer_of(id) == "globex" { "web01" } else { "db01" };
                            way(asset(*a).cmp(asset(*b))).then(a.cmp(b))
                        }
                        QueueColumn::Status => {
                            way(status_rank(&ra.status).cmp(&status_rank(&rb.status))).then(a.cmp(b))
                        }
                        QueueColumn::Customer => way(customer_of(*a).cmp(customer_of(*b))).then(a.cmp(b)),
                        QueueColumn::Assignee => {
                            let (ma, mb) = (&meta[a].assignee, &meta[b].assignee);
                            ma.is_none().cmp(&mb.is_none()).then(way(ma.cmp(mb))).then(a.cmp(b))
                        }
                    }
                });
                assert_eq!(ids, want, "{column:?} descending {descending}");
            }

            // Filters and the search narrow the count and the pages alike.
            let count = |s: QueueSelect<'_>| db.queue_count(&s).unwrap();
            let ids = |s: QueueSelect<'_>| db.queue_page_ids(&s, QueueColumn::Id, false, 200, 0).unwrap();
            let search = |text: &'static str| QueueSelect {
                search: Some(text),
                ..QueueSelect::default()
            };
            assert_eq!(ids(search("fault 007")), [all[7]]);
            assert_eq!(ids(search("FAULT 00")).len(), 10);
            assert_eq!(count(search("WEB01")), 40);
            assert_eq!(ids(search("wd-wcc4e12")), [all[7]], "a disk serial, from its start");
            assert!(ids(search("cc4e12")).is_empty(), "a serial is matched from its start");
            assert!(ids(search("100%")).is_empty(), "LIKE wildcards are text");
            let number = QueueSelect {
                search: Some("no such words"),
                case_id: Some(all[42]),
                ..QueueSelect::default()
            };
            assert_eq!(ids(number), [all[42]]);
            let critical = QueueSelect {
                severity_min: Some("critical"),
                ..QueueSelect::default()
            };
            assert_eq!(count(critical), 30);
            let major_up = QueueSelect {
                severity_min: Some("major"),
                customer: Some("acme"),
                ..QueueSelect::default()
            };
            assert_eq!(count(major_up), ids(major_up).len() as i64);
            assert_eq!(db.queue_sla_rows(&major_up).unwrap().len() as i64, count(major_up));
            let unassigned = QueueSelect {
                assignee: Some(""),
                ..QueueSelect::default()
            };
            assert_eq!(count(unassigned), 96);
        });
    }

    /// Regression: on SQLite the search lowered only A to Z, so a title
    /// with an upper-case umlaut was not found by its lower-case words.
    #[test]
    fn the_search_finds_a_title_whatever_the_case_of_its_letters() {
        on_both(|db| {
            let hot = listed_case(db, "acme", "db01", "major", "new", 5, "Überhitzung im Rack Ä3", "{}");
            listed_case(db, "acme", "db01", "major", "new", 5, "Lüfter defekt", "{}");
            for words in ["überhitzung", "ÜBERHITZUNG", "rack ä3"] {
                let s = QueueSelect {
                    search: Some(words),
                    ..QueueSelect::default()
                };
                assert_eq!(
                    db.queue_page_ids(&s, QueueColumn::Id, false, 10, 0).unwrap(),
                    [hot],
                    "{words}"
                );
            }
        });
    }

    /// The first response is kept on the queue row as the log is written:
    /// by a person changing the status, not by a rule or a person's comment,
    /// and for a case whose queue row is made after its log.
    #[test]
    fn the_sla_rows_say_whether_a_person_responded() {
        use crate::store::items::{Items, NewLog};
        on_both(|db| {
            let quiet = listed_case(db, "acme", "db01", "major", "assigned", 5, "quiet", "{}");
            let answered = listed_case(db, "acme", "db01", "major", "in_progress", 5, "answered", "{}");
            let late = add_case(db, "acme", "db02", "in_progress", None);
            for (item, at_ms, actor, from) in [
                (quiet, 10, "person:ana", None),
                (quiet, 11, "rule:assignment", Some("new")),
                (answered, 12, "person:ana", Some("assigned")),
                (answered, 13, "person:ben", Some("in_progress")),
                (late, 14, "person:cy", Some("assigned")),
            ] {
                db.append_log(&NewLog {
                    item_id: item,
                    at_ms,
                    actor,
                    from_status: from,
                    to_status: "assigned",
                    comment: None,
                    visibility: "internal",
                })
                .unwrap();
            }
            db.add_case_meta(&opened(late, Some("x"))).unwrap();
            let rows = db.queue_sla_rows(&QueueSelect::default()).unwrap();
            let responded: Vec<(i64, bool)> = rows.iter().map(|r| (r.id, r.responded)).collect();
            for want in [(quiet, false), (answered, true), (late, true)] {
                assert!(responded.contains(&want), "{want:?} in {responded:?}");
            }
            assert_eq!(rows[0].response_due_ms, Some(1_000));
            let first = |id| {
                db.query_one(
                    "SELECT responded_at_ms FROM case_meta WHERE item_id = ?1",
                    args![id],
                    |r| r.get::<Option<i64>>(0),
                )
                .unwrap()
            };
            assert_eq!((first(quiet), first(answered), first(late)), (None, Some(12), Some(14)));
        });
    }

    /// A store written before the queue rows kept the first response and
    /// the pauses gets them from the logs when migrated.
    #[test]
    fn a_store_from_before_the_queue_rows_kept_their_log_facts_gets_them_from_the_logs() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let all = crate::store::migrations();
        all.to_latest(&mut conn).unwrap();
        let latest: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        all.to_version(&mut conn, latest - 1).unwrap();
        let id = add_case(&conn, "acme", "db01", "in_progress", None);
        conn.execute_batch(&format!(
            "INSERT INTO case_meta (item_id, source, title, skill) VALUES ({id}, 'user', 't', 'server'); \
             INSERT INTO item_log (item_id, at_ms, actor, from_status, to_status) VALUES \
             ({id}, 1, 'system', NULL, 'new'), ({id}, 7, 'person:ana', 'new', 'assigned'), \
             ({id}, 9, 'person:ben', 'assigned', 'in_progress'), \
             ({id}, 11, 'person:ben', 'in_progress', 'on_hold:awaiting_parts'), \
             ({id}, 12, 'person:ben', 'on_hold:awaiting_parts', 'resolved'), \
             ({id}, 13, 'system', 'resolved', 'in_progress');"
        ))
        .unwrap();
        all.to_latest(&mut conn).unwrap();
        let facts = |conn: &rusqlite::Connection| -> (Option<i64>, i64) {
            conn.query_row(
                "SELECT responded_at_ms, paused FROM case_meta WHERE item_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        assert_eq!(facts(&conn), (Some(7), 2 | PAUSED_OTHERWISE));
        // What the code fills in is what the migration did.
        refill_from_logs(&conn).unwrap();
        assert_eq!(facts(&conn), (Some(7), 2 | PAUSED_OTHERWISE));
    }

    #[test]
    fn a_reopened_case_is_found_with_its_engineer() {
        on_both(|db| {
            let id = add_case(db, "acme", "db01", "new", None);
            let nobodys = add_case(db, "acme", "db02", "new", None);
            db.add_case_meta(&opened(id, Some("x"))).unwrap();
            db.add_case_meta(&opened(nobodys, Some("x"))).unwrap();
            db.set_case_assignee(id, "ana").unwrap();
            let log = |item: i64, comment: &str| -> i64 {
                db.query_one(
                    "INSERT INTO item_log (item_id, at_ms, actor, from_status, to_status, comment) \
                     VALUES (?1, 0, 'rule:x', 'resolved', 'new', ?2) RETURNING id",
                    args![item, comment],
                    |r| r.get(0),
                )
                .unwrap()
            };
            let first = log(id, "reopened");
            log(id, "reopened");
            log(nobodys, "reopened");
            assert_eq!(
                db.reopened_assigned_cases(first - 1).unwrap(),
                [(id, "ana".to_string())]
            );
            let last = log(id, "still failing");
            assert!(db.reopened_assigned_cases(last).unwrap().is_empty());
        });
    }

    #[test]
    fn an_assets_labels_are_its_latest_agents_and_service_reports_name_cases() {
        on_both(|db| {
            assert_eq!(db.host_labels("db01").unwrap(), None);
            add_agent(db, "old", "db01");
            add_agent(db, "new", "db01");
            add_agent(db, "unseen", "db01");
            for (agent, labels, seen) in [
                ("old", r#"{"site":"old"}"#, Some(1)),
                ("new", r#"{"site":"hq"}"#, Some(2)),
                ("unseen", r#"{"site":"never"}"#, None),
            ] {
                db.execute(
                    "UPDATE agents SET labels = ?2, last_seen_ms = ?3 WHERE agent_id = ?1",
                    args![agent, labels, seen],
                )
                .unwrap();
            }
            assert_eq!(db.host_labels("db01").unwrap().as_deref(), Some(r#"{"site":"hq"}"#));

            let id = add_case(db, "acme", "db01", "in_progress", None);
            assert!(!db.case_has_service_report(id).unwrap());
            db.execute(
                "INSERT INTO service_reports (case_id, host, mode, symptom, work_done, engineer, minutes, at_ms) \
                 VALUES (?1, 'db01', 'remote', 's', 'w', 'ana', 5, 0)",
                args![id],
            )
            .unwrap();
            assert!(db.case_has_service_report(id).unwrap());
        });
    }

    /// A log row of case `id`, as the case's opening.
    fn opening_log(db: &dyn Sql, id: i64) -> i64 {
        use crate::store::items::{Items, NewLog};
        db.append_log(&NewLog {
            item_id: id,
            at_ms: 0,
            actor: "rule:test",
            from_status: None,
            to_status: "new",
            comment: None,
            visibility: "internal",
        })
        .unwrap()
    }

    /// Two replicas' transactions on PostgreSQL: the first takes a case id,
    /// the second a higher one and commits it with its queue data before
    /// the first logs and settles its own. The first still finds its case
    /// (before, only cases above the newest with queue data were looked at,
    /// and this one never got its contract or SLA clocks).
    #[test]
    fn a_case_committed_after_a_newer_one_from_another_replica_still_gets_its_queue_data() {
        use crate::store::items::Items;
        let Some(addr) = crate::store::testing::postgres_addr() else {
            return;
        };
        let pg = crate::store::testing::PgDatabase::create(&addr).unwrap();
        let (a, b) = (pg.connect().unwrap(), pg.connect().unwrap());
        crate::store::postgres::migrate(&a).unwrap();
        let ta = a.transaction().unwrap();
        let mark = ta.log_high_water().unwrap();
        let first = add_case(&ta, "acme", "db01", "new", None);
        let tb = b.transaction().unwrap();
        let second = add_case(&tb, "acme", "web01", "new", None);
        opening_log(&tb, second);
        tb.add_case_meta(&opened(second, Some("acme-office"))).unwrap();
        tb.commit().unwrap();
        assert!(first < second);
        opening_log(&ta, first);
        assert_eq!(ta.cases_without_meta(mark).unwrap(), [first]);
        ta.commit().unwrap();
    }

    /// The sinks read the outbox past a cursor: on PostgreSQL a second
    /// writer's outbox row waits until the first writer's transaction ends,
    /// so no lower id can commit after a higher one was read.
    #[test]
    fn outbox_rows_take_their_ids_in_commit_order_across_writers() {
        use crate::store::outbox::Outbox;
        let Some(addr) = crate::store::testing::postgres_addr() else {
            return;
        };
        let pg = crate::store::testing::PgDatabase::create(&addr).unwrap();
        let (a, watcher) = (pg.connect().unwrap(), pg.connect().unwrap());
        crate::store::postgres::migrate(&a).unwrap();
        let (x, y) = (
            add_case(&a, "acme", "db01", "new", None),
            add_case(&a, "acme", "web01", "new", None),
        );
        watcher.ensure_sink_cursor("hook").unwrap();
        let ta = a.transaction().unwrap();
        opening_log(&ta, x);
        std::thread::scope(|scope| {
            let second = scope.spawn(|| {
                let b = pg.connect().unwrap();
                let tb = b.transaction().unwrap();
                opening_log(&tb, y);
                tb.commit().unwrap();
            });
            // The second writer waits for the first's transaction...
            let started = std::time::Instant::now();
            loop {
                let waiting: i64 = watcher
                    .query_one(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                        args![],
                        |r| r.get(0),
                    )
                    .unwrap();
                if waiting == 1 {
                    break;
                }
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(20),
                    "the second writer was never made to wait"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            // ...so a sink sees nothing yet, not the second's change alone.
            assert!(watcher.next_for_sink("hook").unwrap().is_none());
            ta.commit().unwrap();
            second.join().unwrap();
        });
        let first = watcher.next_for_sink("hook").unwrap().unwrap();
        assert_eq!(first.item_id, x);
        watcher.sink_delivered("hook", first.id, 1).unwrap();
        assert_eq!(watcher.next_for_sink("hook").unwrap().unwrap().item_id, y);
    }

    /// Only a case's log rows go to the outbox: a finding's are written
    /// while another writer holds the outbox's order, without waiting.
    #[test]
    fn a_findings_log_row_does_not_wait_for_the_outbox_order() {
        let Some(addr) = crate::store::testing::postgres_addr() else {
            return;
        };
        let pg = crate::store::testing::PgDatabase::create(&addr).unwrap();
        let a = pg.connect().unwrap();
        crate::store::postgres::migrate(&a).unwrap();
        let case = add_case(&a, "acme", "db01", "new", None);
        let finding: i64 = a
            .query_one(
                "INSERT INTO items (kind, customer, asset, check_name, component, status, severity, rule, \
                 opened_at_ms, updated_at_ms, last_firing_at_ms, occurrences, evidence) \
                 VALUES ('finding', 'acme', 'db01', 'reboot_required', '', 'new', 'warning', 'reboot_required', \
                 0, 0, 0, 1, '{}') RETURNING id",
                args![],
                |r| r.get(0),
            )
            .unwrap();
        let ta = a.transaction().unwrap();
        opening_log(&ta, case);
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let b = pg.connect().unwrap();
                let tb = b.transaction().unwrap();
                opening_log(&tb, finding);
                tb.commit().unwrap();
                let _ = done.send(());
            });
            let waited = finished.recv_timeout(std::time::Duration::from_secs(20));
            ta.commit().unwrap();
            assert!(
                waited.is_ok(),
                "the finding's log row waited for the case's transaction"
            );
        });
    }
}
