//! The writer's tests: raw report bodies and what the writer logs.

mod raw_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::*;
    use crate::store::*;

    fn report_json(seq: u64, at_ms: i64) -> Vec<u8> {
        format!(
            r#"{{"version":1,"agent_id":"a1","seq":{seq},"collected_at_ms":{at_ms},"interval_secs":60,"host":"db1","labels":{{}},"samples":[]}}"#
        )
        .into_bytes()
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b).unwrap();
        enc.finish().unwrap()
    }

    fn enrolled() -> (testing::TestDb, Fleet) {
        let conn = testing::TestDb::new();
        let fleet = Fleet::default();
        agents::Agents::add_enrollment_token(&conn, "t", 0).unwrap();
        let (reply, _rx) = oneshot::channel();
        let e = Enrollment {
            token_hash: "t".into(),
            agent_id: "a1".into(),
            credential_hash: "c".into(),
            host: "db1".into(),
            labels: None,
        };
        run_batch(&conn, vec![Job::Enroll(e, reply)], &fleet, &WriterOptions::default());
        (conn, fleet)
    }

    fn apply_one(conn: &Db, fleet: &Fleet, seq: u64, at_ms: i64, gz: bool, options: &WriterOptions) {
        let json = report_json(seq, at_ms);
        let (body, encoding) = if gz {
            (gzip(&json), Encoding::Gzip)
        } else {
            (json.clone(), Encoding::Identity)
        };
        let report = wire::decode(&json).unwrap();
        let (reply, mut rx) = oneshot::channel();
        let inc = Incoming {
            agent_id: "a1".into(),
            credential_hash: None,
            report,
            samples: vec![],
            sample_count: 0,
            body,
            encoding,
            received_at_ms: at_ms,
            clock: None,
        };
        run_batch(conn, vec![Job::Apply(Box::new(inc), reply)], fleet, options);
        assert!(matches!(rx.try_recv(), Ok(Ok(Applied::Applied { .. }))));
    }

    fn raw(conn: &Db) -> Vec<RawReport> {
        let mut all = Vec::new();
        conn.for_each_raw_report(None, None, |r| -> Result<(), StoreError> {
            all.push(r);
            Ok(())
        })
        .unwrap();
        all
    }

    #[test]
    fn raw_reports_are_kept_as_received_and_pruned() {
        let (conn, fleet) = enrolled();
        let keep = WriterOptions::default();
        apply_one(&conn, &fleet, 1, 1_000, true, &keep);
        apply_one(&conn, &fleet, 2, 2_000, false, &keep);
        apply_one(&conn, &fleet, 3, 3_000, true, &keep);
        let all = raw(&conn);
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(all[0].encoding, Encoding::Gzip, "gzip stays gzip");
        assert_eq!(all[0].body, gzip(&report_json(1, 1_000)));
        assert_eq!(all[1].encoding, Encoding::Identity);
        assert_eq!(all[1].body, report_json(2, 2_000));

        let mut window = Vec::new();
        conn.for_each_raw_report(Some(2_000), Some(3_000), |r| -> Result<(), StoreError> {
            window.push(r.seq);
            Ok(())
        })
        .unwrap();
        assert_eq!(window, [2], "since is inclusive, until exclusive");

        let prune = Prune {
            report_log_before_ms: 0,
            raw_reports_before_ms: 2_500,
            outbox_before_ms: 0,
        };
        run_batch(&conn, vec![Job::Prune(prune)], &fleet, &keep);
        assert_eq!(raw(&conn).iter().map(|r| r.seq).collect::<Vec<_>>(), [3]);
        let log: i64 = testing::row_count(&conn, "report_log");
        assert_eq!(log, 3, "the report log has its own retention");
    }

    #[test]
    fn zero_retention_keeps_none() {
        let (conn, fleet) = enrolled();
        let none = WriterOptions {
            keep_raw_reports: false,
            ..WriterOptions::default()
        };
        apply_one(&conn, &fleet, 1, 1_000, true, &none);
        apply_one(&conn, &fleet, 2, 2_000, false, &none);
        assert!(raw(&conn).is_empty());
        let latest: i64 = testing::latest_seq(&conn);
        assert_eq!(latest, 2, "the rest of the report is still applied");
    }
}

mod log_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Mutex;

    use super::super::*;
    use crate::store::*;

    /// Everything the writer logs, as text.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f` as a writer job on a fresh store knowing asset db01, and
    /// returns its answer and what the writer logged meanwhile.
    fn run_logged(f: RunFn) -> (Result<Answer, StoreError>, String) {
        let conn = testing::TestDb::new();
        crate::cases::hold::mark_known(&conn, "db01", None, &[], 0).unwrap();
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        let (reply, mut rx) = oneshot::channel();
        tracing::subscriber::with_default(subscriber, || {
            run_batch(
                &conn,
                vec![Job::Run(Some(f), reply)],
                &Fleet::default(),
                &WriterOptions::default(),
            );
        });
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        (rx.try_recv().unwrap(), log)
    }

    #[test]
    fn a_fault_on_an_unknown_asset_is_not_logged_as_an_error() {
        let report = crate::queue::FaultReport {
            asset: "db1".into(),
            title: "Mail down".into(),
            description: String::new(),
            severity: crate::cases::Severity::Major,
            component: String::new(),
        };
        let (answer, log) = run_logged(job(move |c| {
            let contracts = crate::contracts::Contracts::default();
            let (id, _) = crate::queue::report_fault(c, &contracts, &report, "ana", 0)?;
            Ok(serde_json::json!(id))
        }));
        let e = answer.unwrap_err();
        assert_eq!(e.class(), ErrorClass::NotFound, "{e}");
        assert!(!log.contains("ERROR"), "{log}");
        assert!(
            log.contains("DEBUG") && log.contains("no known asset named \"db1\""),
            "{log}"
        );
    }

    #[test]
    fn an_internal_failure_is_still_logged_as_an_error() {
        let (answer, log) = run_logged(job(|c| {
            testing::write_to_a_missing_table(c)?;
            Ok(serde_json::Value::Null)
        }));
        assert_eq!(answer.unwrap_err().class(), ErrorClass::Internal);
        assert!(
            log.lines()
                .any(|l| l.contains("ERROR") && l.contains("store job failed") && l.contains("no_such_table")),
            "{log}"
        );
    }

    /// Runs each of `jobs` as one batch on `conn`; their answers.
    fn run_batch_of(conn: &Db, options: &WriterOptions, jobs: Vec<RunFn>) -> Vec<Result<Answer, StoreError>> {
        let (jobs, answers): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .map(|f| {
                let (reply, rx) = oneshot::channel();
                (Job::Run(Some(f), reply), rx)
            })
            .unzip();
        run_batch(conn, jobs, &Fleet::default(), options);
        answers.into_iter().map(|mut rx| rx.try_recv().unwrap()).collect()
    }

    fn probe_rows(conn: &Db) -> i64 {
        testing::row_count(conn, "store_probe")
    }

    /// A full disk answered 500 and left the batch half applied: SQLite may
    /// roll the whole transaction back on SQLITE_FULL, after which the jobs
    /// before the failure were answered as applied though nothing was.
    #[test]
    fn a_full_store_fails_the_whole_batch_as_unwritable_and_recovers() {
        let conn = Db::sqlite(open_in_memory().unwrap());
        let sqlite = conn.as_sqlite().unwrap();
        let pages: i64 = testing::sqlite_page_count(sqlite);
        // No page past the ones there are: SQLite answers SQLITE_FULL, as on a full disk.
        sqlite.pragma_update(None, "max_page_count", pages).unwrap();
        let options = WriterOptions::default();
        let health = &options.health;
        let fits = job(|c| {
            testing::put_probe_row(c, 1)?;
            Ok(serde_json::Value::Null)
        });
        let too_big = job(|c| {
            testing::write_a_megabyte(c)?;
            Ok(serde_json::Value::Null)
        });
        let answers = run_batch_of(&conn, &options, vec![fits, too_big]);
        for a in &answers {
            let e = a.as_ref().unwrap_err();
            assert!(matches!(e, StoreError::Unwritable(_)), "{e}");
            assert_eq!(e.class(), ErrorClass::Unavailable);
        }
        assert_eq!(probe_rows(&conn), 0, "nothing of the batch was applied");
        assert!(
            health.failing().is_some_and(|r| r.contains("full")),
            "{:?}",
            health.failing()
        );

        // A batch that only reads says nothing about writing.
        let read = job(|c| Ok(serde_json::json!(probe_rows(c))));
        assert!(run_batch_of(&conn, &options, vec![read])[0].is_ok());
        assert!(health.failing().is_some());

        sqlite.pragma_update(None, "max_page_count", pages + 1000).unwrap();
        let fits = job(|c| {
            testing::put_probe_row(c, 2)?;
            Ok(serde_json::Value::Null)
        });
        assert!(run_batch_of(&conn, &options, vec![fits])[0].is_ok());
        assert_eq!(probe_rows(&conn), 1);
        assert_eq!(health.failing(), None, "a write that committed clears it");
    }
}
