//! Connection limits, checked as a connection is accepted, before its TLS
//! handshake: at most `http.max_connections` at once, and at most
//! `http.max_connections_per_source` from one source address (an IPv6 /64:
//! one host holds a whole /64). A connection over either limit is closed at
//! once. Each accepted connection holds its place until it closes, so the
//! file descriptors the collector needs stay bounded whatever clients do.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::limits::Limit;
use crate::config::HttpConfig;
use crate::metrics::Metrics;

/// Open connections, in total and per source.
#[derive(Debug)]
pub struct ConnLimits {
    max_total: usize,
    max_per_source: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// The address a limit counts by: IPv4 as is (also when mapped into IPv6),
/// IPv6 by its /64.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

impl ConnLimits {
    pub fn new(cfg: &HttpConfig) -> Self {
        Self {
            max_total: cfg.max_connections,
            max_per_source: cfg.max_connections_per_source,
            open: Mutex::default(),
        }
    }

    /// A place for one more connection from `ip`, held until the guard drops.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Limit> {
        let source = source_of(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.max_total {
            return Err(Limit::Connections);
        }
        let n = open.by_source.entry(source).or_insert(0);
        if *n >= self.max_per_source {
            return Err(Limit::PerSource);
        }
        *n += 1;
        open.total += 1;
        Ok(ConnGuard {
            limits: self.clone(),
            source,
        })
    }

    /// Connections open now.
    pub fn total(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

/// One open connection's place.
#[derive(Debug)]
pub struct ConnGuard {
    limits: Arc<ConnLimits>,
    source: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                open.by_source.remove(&self.source);
            }
        }
    }
}

/// The acceptor under TLS: counts the connection in, or closes it.
#[derive(Clone)]
pub struct LimitAcceptor {
    limits: Arc<ConnLimits>,
    metrics: Arc<Metrics>,
}

impl LimitAcceptor {
    pub fn new(limits: Arc<ConnLimits>, metrics: Arc<Metrics>) -> Self {
        Self { limits, metrics }
    }
}

impl<S> Accept<TcpStream, S> for LimitAcceptor {
    type Stream = Counted<TcpStream>;
    type Service = S;
    type Future = Ready<io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let ip = match stream.peer_addr() {
            Ok(a) => a.ip(),
            Err(e) => return ready(Err(e)),
        };
        match self.limits.open(ip) {
            Ok(guard) => {
                let _ = stream.set_nodelay(true);
                ready(Ok((
                    Counted {
                        inner: stream,
                        _guard: guard,
                    },
                    service,
                )))
            }
            Err(limit) => {
                self.metrics.http_limited.record(limit, Some(ip));
                // Dropping the stream closes the connection.
                ready(Err(io::Error::other(format!("connection refused: {}", limit.label()))))
            }
        }
    }
}

/// A stream that holds its connection's place while it lives.
#[derive(Debug)]
pub struct Counted<T> {
    inner: T,
    _guard: ConnGuard,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn limits(total: usize, per_source: usize) -> Arc<ConnLimits> {
        Arc::new(ConnLimits::new(&HttpConfig {
            max_connections: total,
            max_connections_per_source: per_source,
            ..HttpConfig::default()
        }))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_source_cannot_take_every_connection() {
        let l = limits(5, 2);
        let a1 = l.open(ip("10.0.0.1")).unwrap();
        let _a2 = l.open(ip("10.0.0.1")).unwrap();
        assert_eq!(l.open(ip("10.0.0.1")).unwrap_err(), Limit::PerSource);
        // The same address mapped into IPv6 is the same source.
        assert_eq!(l.open(ip("::ffff:10.0.0.1")).unwrap_err(), Limit::PerSource);
        let _b = l.open(ip("10.0.0.2")).unwrap();
        drop(a1);
        let _a3 = l.open(ip("10.0.0.1")).unwrap();
        let _c = l.open(ip("10.0.0.3")).unwrap();
        let _d = l.open(ip("10.0.0.4")).unwrap();
        assert_eq!(l.total(), 5);
        assert_eq!(l.open(ip("10.0.0.5")).unwrap_err(), Limit::Connections);
    }

    #[test]
    fn an_ipv6_source_is_its_slash_64() {
        let l = limits(10, 1);
        let a = l.open(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(l.open(ip("2001:db8:1:2:ffff::9")).unwrap_err(), Limit::PerSource);
        let _b = l.open(ip("2001:db8:1:3::1")).unwrap();
        drop(a);
        assert!(l.open(ip("2001:db8:1:2::7")).is_ok());
        assert_eq!(
            l.open.lock().unwrap().by_source.len(),
            1,
            "closed sources are forgotten"
        );
    }
}
