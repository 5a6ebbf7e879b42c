//! The metrics listener (`[metrics] listen`): `GET /metrics` in
//! Prometheus' text format, `GET /healthz` (200 while serving, 503 once the
//! daemon drains). HTTP/1.1 through hyper, one task per connection, apart
//! from the FTP listeners.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::{self, Metrics};
use crate::server::Server;

/// How long one scrape connection may take; a scraper is quick.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, server: Arc<Server>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(answer(&request, &server)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
        });
    }
}

fn answer(request: &Request<Incoming>, server: &Server) -> Response<Full<Bytes>> {
    let metrics = metrics::get();
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            refresh(metrics, server);
            respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.render(),
            )
        }
        (&Method::GET, "/healthz") if metrics.draining() => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "draining\n".to_owned(),
        ),
        (&Method::GET, "/healthz") => respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ok\n".to_owned(),
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: GET /metrics or /healthz\n".to_owned(),
        ),
    }
}

/// The gauges of live state, read now.
fn refresh(metrics: &Metrics, server: &Server) {
    if let Some((leased, free)) = server.context().ports.usage() {
        Metrics::set_gauge(
            &metrics.passive_ports.with_label_values(&["leased"]),
            leased,
        );
        Metrics::set_gauge(&metrics.passive_ports.with_label_values(&["free"]), free);
    }
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}
