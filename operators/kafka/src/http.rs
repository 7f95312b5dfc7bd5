//! A minimal HTTP endpoint for operations: `GET /metrics` (Prometheus text), `/healthz` (the main
//! loop turned in the last `stall_after` seconds) and `/readyz` (partitions assigned, Lance reached).
//! One thread, one short response per connection: it serves probes and scrapes, nothing else.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::{info, warn};

use crate::error::{KafkaError, Result};
use crate::metrics::Metrics;

/// Binds `addr` (e.g. `0.0.0.0:9464`) and serves in a background thread. Returns the bound address.
pub fn serve(
    addr: &str,
    metrics: Arc<Metrics>,
    stall_after: Duration,
) -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr).map_err(|e| KafkaError::Io {
        context: format!("binding the metrics endpoint {addr}"),
        source: e,
    })?;
    let bound = listener.local_addr().map_err(|e| KafkaError::Io {
        context: "metrics endpoint address".into(),
        source: e,
    })?;
    info!(%bound, "serving /metrics /healthz /readyz");
    std::thread::Builder::new()
        .name("lexembed-http".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = respond(stream, &metrics, stall_after) {
                    warn!(error = %e, "metrics endpoint request failed");
                }
            }
        })
        .map_err(|e| KafkaError::Io {
            context: "starting the metrics thread".into(),
            source: e,
        })?;
    Ok(bound)
}

fn respond(stream: TcpStream, metrics: &Metrics, stall_after: Duration) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Drain the headers so the client sees a clean response.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body, kind) = match path {
        "/metrics" => ("200 OK", metrics.render(), "text/plain; version=0.0.4"),
        "/healthz" => {
            let idle = metrics.since_heartbeat();
            if idle <= stall_after.as_secs_f64() {
                ("200 OK", "ok\n".to_string(), "text/plain")
            } else {
                (
                    "503 Service Unavailable",
                    format!("main loop stalled for {idle:.0} s\n"),
                    "text/plain",
                )
            }
        }
        "/readyz" => {
            if metrics.ready.load(Ordering::Relaxed) {
                ("200 OK", "ready\n".to_string(), "text/plain")
            } else {
                (
                    "503 Service Unavailable",
                    "not ready: no partitions assigned yet\n".to_string(),
                    "text/plain",
                )
            }
        }
        _ => (
            "404 Not Found",
            "try /metrics, /healthz or /readyz\n".to_string(),
            "text/plain",
        ),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}
