//! The HTTPS edge under a slow-body flood, on the real binaries: clients
//! that send a request's headers and then drip its body a byte a second, on
//! enrollment, login and ingest, from a few loopback addresses (all of
//! 127.0.0.0/8 is loopback). The limits are set low so the flood is small.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::util::{Agent, Collector, eventually, wait_for_host};

const PER_SOURCE: usize = 40;

/// Limits low enough for a small test. Enrollment's rate limit answers 429
/// before reading a body: it is raised here so the dripping enrollments test
/// the body deadline, not the rate limit.
fn config() -> String {
    format!(
        "[ingest]\nbody_timeout_secs = 12\n\
         [http]\nmax_connections = {}\nmax_connections_per_source = {PER_SOURCE}\n\
         max_concurrent_requests = 200\nbody_timeout_secs = 12\nheader_timeout_secs = 12\n\
         [enroll]\nper_source_burst = 1000\nburst = 1000\n",
        4 * PER_SOURCE
    )
}

fn tls(c: &Collector) -> TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    caretaker_collector::serve::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(c.data_dir().join("ca.pem")).unwrap_or_else(|e| panic!("ca: {e}"));
    roots.add(ca).unwrap_or_else(|e| panic!("ca: {e}"));
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to the collector from `source` (a loopback address).
async fn connect(c: &Collector, tls: &TlsConnector, source: Ipv4Addr) -> std::io::Result<TlsStream<TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let tcp = socket.connect(SocketAddr::from(([127, 0, 0, 1], c.port))).await?;
    let name = rustls::pki_types::ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    tls.connect(name, tcp).await
}

/// Sends a POST's head promising a long body, then drips the body a byte a
/// second until the collector closes the connection; returns what it
/// answered (empty when it closed without an answer).
async fn drip(mut s: TlsStream<TcpStream>, path: &str, extra: &str) -> String {
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-www-form-urlencoded\r\n{extra}content-length: 100000\r\n\r\n"
    );
    if s.write_all(head.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                // Keeps dripping while the collector reads; a write error
                // means it closed, which the next read reports.
                let _ = s.write_all(b"a").await;
            }
        }
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

async fn limited(c: &Collector, limit: &str) -> f64 {
    c.metric_value(&format!("caretaker_http_limited_total{{limit=\"{limit}\"}}"))
        .await
        .unwrap_or(0.0)
}

/// 3,000 connections dripping a body stopped a real agent's reports for 73
/// s; enrollment and login bodies never timed out, and no line was logged.
#[tokio::test]
async fn slow_bodies_are_cut_off_and_the_agent_keeps_reporting() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start_with_config(dir.path(), &config()).await;
    let agent = Agent::start(dir.path(), &c, 1, "");
    let agent_id = wait_for_host(&c, &agent).await;
    // A second, compromised host's credential: it may send reports, slowly.
    let mallory = caretaker_tests::enroll(&c.client, &c.url(), &c.enrollment_token, "mallory")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tls = tls(&c);

    // One source per route, each up to its share of the connections.
    let floods = [
        ("/api/v1/enroll", Ipv4Addr::new(127, 0, 0, 2), String::new()),
        ("/login", Ipv4Addr::new(127, 0, 0, 3), String::new()),
        (
            "/api/v1/reports",
            Ipv4Addr::new(127, 0, 0, 4),
            format!(
                "authorization: Bearer {}\r\ncontent-encoding: gzip\r\n",
                mallory.credential
            ),
        ),
    ];
    let ended = Arc::new(AtomicUsize::new(0));
    let mut drips = Vec::new();
    for (path, source, extra) in &floods {
        for _ in 0..PER_SOURCE {
            let s = connect(&c, &tls, *source)
                .await
                .unwrap_or_else(|e| panic!("connection from {source} within its share: {e}"));
            let (path, extra, ended) = (path.to_string(), extra.clone(), ended.clone());
            drips.push(tokio::spawn(async move {
                let answer = drip(s, &path, &extra).await;
                ended.fetch_add(1, Ordering::SeqCst);
                (path, answer)
            }));
        }
    }

    // One source cannot take more than its share: the next connection from
    // 127.0.0.2 is closed before its handshake, another source's is served.
    assert!(
        connect(&c, &tls, Ipv4Addr::new(127, 0, 0, 2)).await.is_err(),
        "a connection over the source's share was served"
    );
    let other = connect(&c, &tls, Ipv4Addr::new(127, 0, 0, 9)).await;
    assert!(other.is_ok(), "another source was refused: {:?}", other.err());
    drop(other);

    // The real agent's reports keep being applied while the flood holds its
    // connections (ingest has its own budget, mallory holds one slot of it).
    let applied = |h: serde_json::Value| h["reports_applied"].as_u64().unwrap_or(0);
    let before = applied(c.host(&agent_id).await);
    eventually(
        "the agent's reports during the flood",
        Duration::from_secs(60),
        || async { (applied(c.host(&agent_id).await) >= before + 3).then_some(()) },
    )
    .await;
    let enroll_login_open = drips.len() - ended.load(Ordering::SeqCst);
    assert!(
        enroll_login_open >= 2 * PER_SOURCE,
        "the agent was applied while the enrollment and login drips were still open ({enroll_login_open} open)"
    );

    // Every drip is closed: after the body timeout (408), or at once for
    // mallory's second and later reports (429: one report at a time).
    let mut answers = Vec::new();
    for d in drips {
        match tokio::time::timeout(Duration::from_secs(60), d).await {
            Ok(r) => answers.push(r.unwrap_or_else(|e| panic!("{e}"))),
            Err(_) => panic!("a dripping connection is still open 60 s after the body timeout"),
        }
    }
    for (path, answer) in &answers {
        assert!(
            answer.is_empty() || answer.contains(" 408 ") || answer.contains(" 429 "),
            "{path}: {answer}"
        );
    }
    let timed_out = answers.iter().filter(|(_, a)| a.contains(" 408 ")).count();
    assert!(timed_out >= 2 * PER_SOURCE, "408 answers: {timed_out}");

    assert!(limited(&c, "body_timeout").await >= (2 * PER_SOURCE + 1) as f64);
    assert!(limited(&c, "per_source").await >= 1.0);
    assert!(limited(&c, "per_agent").await >= (PER_SOURCE - 1) as f64);
    let log = std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("http limits cut connections or requests short") && l.contains("body_timeout=")),
        "no log line about the limits"
    );

    // The collector's connection limit: five sources' shares are more than it.
    let mut held = Vec::new();
    let mut refused = 0;
    for last in 10..15u8 {
        for _ in 0..PER_SOURCE {
            match connect(&c, &tls, Ipv4Addr::new(127, 0, 0, last)).await {
                Ok(s) => held.push(s),
                Err(_) => refused += 1,
            }
        }
    }
    assert!(refused >= PER_SOURCE - 2, "refused over the limit: {refused}");
    assert!(limited(&c, "connections").await >= 1.0);
    drop(held);
    // And the agent still reports.
    let before = applied(c.host(&agent_id).await);
    eventually(
        "the agent's reports after the flood",
        Duration::from_secs(60),
        || async { (applied(c.host(&agent_id).await) > before).then_some(()) },
    )
    .await;
}
