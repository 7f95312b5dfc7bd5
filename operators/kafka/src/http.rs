//! The operator's HTTP endpoint for operations, on hyper: `GET /metrics` (Prometheus text, as the
//! caller's recorder renders it),
//! `/healthz` (the main loop turned in the last `stall_after` seconds) and `/readyz` (a member of the
//! group, Lance reached: whether or not partitions are assigned, so more replicas than partitions
//! still roll out).
//!
//! Every connection is its own task on the caller's runtime, so one slow client never holds a probe
//! up; a request's headers must arrive whole within `HEADER_TIMEOUT` and fit in `MAX_HEADER_BYTES`
//! (a larger request is answered 431 and closed), and a connection lives at most `CONNECTION_LIFETIME`:
//! memory and time per client stay bounded whatever it sends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tracing::{debug, info, warn};

use crate::error::{KafkaError, Result};
use crate::metrics::Metrics;

/// A request's line and headers must arrive within this (a client trickling bytes is cut off).
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Read buffer per connection: headers beyond it are refused with 431 (hyper's minimum is 8 KiB).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// A connection is closed after this, keep-alive or not.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Renders the metrics registry as Prometheus text (the binary's exporter).
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// What the endpoint answers from.
#[derive(Clone)]
pub struct Endpoint {
    /// Health state (heartbeat, readiness).
    pub metrics: Arc<Metrics>,
    /// `/metrics`' body; `None`: no recorder installed, `/metrics` is empty.
    pub render: Option<RenderMetrics>,
    /// `/healthz` fails once the main loop has not turned for this long.
    pub stall_after: Duration,
}

/// Binds `addr` (e.g. `0.0.0.0:9464`) and serves on `rt` until the process ends. Returns the bound
/// address.
pub fn serve(addr: &str, endpoint: Endpoint, rt: &Handle) -> Result<SocketAddr> {
    let io_err = |context: String| move |source| KafkaError::Io { context, source };
    let listener = std::net::TcpListener::bind(addr)
        .map_err(io_err(format!("binding the metrics endpoint {addr}")))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("metrics endpoint socket".into()))?;
    let bound = listener
        .local_addr()
        .map_err(io_err("metrics endpoint address".into()))?;
    let listener = {
        let _entered = rt.enter();
        TcpListener::from_std(listener).map_err(io_err("metrics endpoint socket".into()))?
    };
    info!(%bound, "serving /metrics /healthz /readyz");
    rt.spawn(accept_loop(listener, endpoint));
    Ok(bound)
}

async fn accept_loop(listener: TcpListener, endpoint: Endpoint) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning a core.
                warn!(error = %e, "metrics endpoint accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let response = route(&req, &endpoint);
                async move { Ok::<_, Infallible>(response) }
            });
            // One request per connection, as probes and scrapers use it: nothing idles open.
            let connection = http1::Builder::new()
                .keep_alive(false)
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                Ok(Err(e)) => debug!(error = %e, "metrics endpoint connection ended"),
                Err(_) => debug!("metrics endpoint connection closed after its lifetime"),
                Ok(Ok(())) => {}
            }
        });
    }
}

fn route(req: &Request<Incoming>, endpoint: &Endpoint) -> Response<Full<Bytes>> {
    let metrics = &endpoint.metrics;
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            endpoint.render.as_ref().map(|r| r()).unwrap_or_default(),
            "text/plain; version=0.0.4",
        ),
        "/healthz" => {
            let idle = metrics.since_heartbeat();
            if idle <= endpoint.stall_after.as_secs_f64() {
                text(StatusCode::OK, "ok\n".into(), "text/plain")
            } else {
                let body = format!("main loop stalled for {idle:.0} s\n");
                text(StatusCode::SERVICE_UNAVAILABLE, body, "text/plain")
            }
        }
        "/readyz" if metrics.is_ready() => text(StatusCode::OK, "ready\n".into(), "text/plain"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: not a member of the consumer group yet\n".into(),
            "text/plain",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "try /metrics, /healthz or /readyz\n".into(),
            "text/plain",
        ),
    }
}

fn text(status: StatusCode, body: String, kind: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(kind));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    fn get(addr: SocketAddr, path: &str) -> (String, Duration) {
        let started = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        (out, started.elapsed())
    }

    fn server() -> (tokio::runtime::Runtime, SocketAddr, Arc<Metrics>) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let metrics = Arc::new(Metrics::new("test"));
        let endpoint = Endpoint {
            metrics: metrics.clone(),
            render: Some(Arc::new(|| "lexembed_ready 0\n".to_string())),
            stall_after: Duration::from_secs(60),
        };
        let addr = serve("127.0.0.1:0", endpoint, rt.handle()).unwrap();
        (rt, addr, metrics)
    }

    /// A client trickling one byte every second and another sending a 100 MB header do not hold the
    /// probes up (the old endpoint served one connection at a time and read lines without a limit),
    /// and the big header is refused once it outgrows the buffer.
    #[test]
    fn slow_and_huge_clients_do_not_block_probes() {
        let (_rt, addr, metrics) = server();
        let mut trickler = TcpStream::connect(addr).unwrap();
        let trickle = std::thread::spawn(move || {
            for b in b"GET /healthz HTTP/1.1\r\nX-Slow: " {
                if trickler.write_all(&[*b]).is_err() {
                    return; // cut off: what the header timeout is for
                }
                std::thread::sleep(Duration::from_millis(1000));
            }
        });
        let mut huge = TcpStream::connect(addr).unwrap();
        let flood = std::thread::spawn(move || {
            let _ = huge.write_all(b"GET /metrics HTTP/1.1\r\nX-Big: ");
            let chunk = vec![b'a'; 1 << 20];
            let mut sent = 0usize;
            while sent < 100 << 20 {
                match huge.write_all(&chunk) {
                    Ok(()) => sent += chunk.len(),
                    Err(_) => break, // refused and closed
                }
            }
            let mut answer = String::new();
            let _ = huge.read_to_string(&mut answer);
            (sent, answer)
        });
        std::thread::sleep(Duration::from_millis(300));
        for _ in 0..5 {
            let (out, took) = get(addr, "/healthz");
            assert!(out.starts_with("HTTP/1.1 200"), "{out}");
            assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
        }
        let (sent, answer) = flood.join().unwrap();
        assert!(
            sent < 100 << 20 || answer.contains("431"),
            "100 MB of header were read ({sent} bytes sent): {answer}"
        );
        metrics.set_ready(true);
        assert!(get(addr, "/readyz").0.starts_with("HTTP/1.1 200"));
        assert!(
            get(addr, "/metrics")
                .0
                .ends_with("\r\n\r\nlexembed_ready 0\n")
        );
        assert!(get(addr, "/nope").0.starts_with("HTTP/1.1 404"));
        drop(trickle);
    }
}
