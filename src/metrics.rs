//! What the daemon counts, for Prometheus: one registry per process, each
//! metric an atomic that the code paths bump where things happen, and the
//! gauges of live state (connections, passive ports) read at scrape time.
//! A scrape reads atomics and the port pool's counts; it takes no lock a
//! transfer holds. `docs/operations.md` lists every name and what it means.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric of the daemon.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Control connections open now, by whether TLS protects them.
    pub sessions: IntGaugeVec,
    /// `PASS` outcomes: ok, failed, blocked (over the address's budget or
    /// blocked), unavailable (the user store could not answer).
    pub logins: IntCounterVec,
    /// Finished file transfers by direction and result.
    pub transfers: IntCounterVec,
    /// Bytes moved by finished file transfers, by direction.
    pub transfer_bytes: IntCounterVec,
    /// Replies sent, by class (`2xx`, `4xx`, ...).
    pub replies: IntCounterVec,
    /// Passive ports of the configured range, leased and free.
    pub passive_ports: IntGaugeVec,
    /// TLS handshakes completed, by connection (control, data) and whether
    /// a session was resumed.
    pub tls_handshakes: IntCounterVec,
    /// Password checks (argon2) run.
    pub password_checks: IntCounter,
    /// Password checks waiting for their turn now.
    pub password_queue: IntGauge,
    /// Seconds a password check waited before it ran.
    pub password_wait: Histogram,
    /// Storage operations' latency, by operation.
    pub storage_seconds: HistogramVec,
    /// Config reloads, ok or refused.
    pub reloads: IntCounterVec,
    /// Logins the auth hook was asked about, by what came of it: allowed,
    /// refused (its no), failed (no usable answer: a timeout, an error, a
    /// malformed answer).
    pub auth_hook_answers: IntCounterVec,
    /// Hook events by kind and result: ok, failed (every attempt), dropped
    /// (the hook's queue was full).
    pub hook_events: IntCounterVec,
    /// Pre-upload check decisions: allowed, refused, failed.
    pub pre_upload: IntCounterVec,
    draining: AtomicBool,
}

/// The process's metrics, made on first use.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        // Names and labels are constants; registering them cannot fail.
        fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("{name}: {e}"));
            registry
                .register(Box::new(metric.clone()))
                .unwrap_or_else(|e| unreachable!("{name}: {e}"));
            metric
        }
        fn gauges(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("{name}: {e}"));
            registry
                .register(Box::new(metric.clone()))
                .unwrap_or_else(|e| unreachable!("{name}: {e}"));
            metric
        }
        let password_checks = IntCounter::new(
            "aioftpd_password_checks_total",
            "Password verifications (argon2) run.",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let password_queue = IntGauge::new(
            "aioftpd_password_queue",
            "Password verifications waiting for their turn now.",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let password_wait = Histogram::with_opts(
            HistogramOpts::new(
                "aioftpd_password_wait_seconds",
                "Seconds a password verification waited for its turn.",
            )
            .buckets(vec![0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let storage_seconds = HistogramVec::new(
            HistogramOpts::new(
                "aioftpd_storage_operation_seconds",
                "Latency of storage operations (metadata, list, open, mkdir, rename, ...).",
            )
            .buckets(vec![
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
            ]),
            &["operation"],
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        for metric in [
            Box::new(password_checks.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(password_queue.clone()),
            Box::new(password_wait.clone()),
            Box::new(storage_seconds.clone()),
        ] {
            registry
                .register(metric)
                .unwrap_or_else(|e| unreachable!("{e}"));
        }
        Metrics {
            sessions: gauges(
                &registry,
                "aioftpd_sessions",
                "Control connections open now, by TLS state.",
                &["tls"],
            ),
            logins: counters(
                &registry,
                "aioftpd_logins_total",
                "Logins by result: ok, failed, blocked, unavailable.",
                &["result"],
            ),
            transfers: counters(
                &registry,
                "aioftpd_transfers_total",
                "Finished file transfers (RETR, STOR, APPE, STOU) by direction and result.",
                &["direction", "result"],
            ),
            transfer_bytes: counters(
                &registry,
                "aioftpd_transfer_bytes_total",
                "Bytes moved by finished file transfers, by direction.",
                &["direction"],
            ),
            replies: counters(
                &registry,
                "aioftpd_replies_total",
                "Replies sent, by class.",
                &["class"],
            ),
            passive_ports: gauges(
                &registry,
                "aioftpd_passive_ports",
                "Ports of [passive] ports, leased and free.",
                &["state"],
            ),
            tls_handshakes: counters(
                &registry,
                "aioftpd_tls_handshakes_total",
                "TLS handshakes completed, by connection and whether a session was resumed.",
                &["connection", "resumed"],
            ),
            password_checks,
            password_queue,
            password_wait,
            storage_seconds,
            reloads: counters(
                &registry,
                "aioftpd_reloads_total",
                "Config reloads by result: ok, refused.",
                &["result"],
            ),
            auth_hook_answers: counters(
                &registry,
                "aioftpd_auth_hook_answers_total",
                "Logins asked of [auth_hook] by result: allowed, refused, failed.",
                &["result"],
            ),
            hook_events: counters(
                &registry,
                "aioftpd_hook_events_total",
                "Hook events by event and result: ok, failed, dropped.",
                &["event", "result"],
            ),
            pre_upload: counters(
                &registry,
                "aioftpd_pre_upload_checks_total",
                "Pre-upload check decisions: allowed, refused, failed.",
                &["decision"],
            ),
            registry,
            draining: AtomicBool::new(false),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into memory cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Records how long a storage operation took.
    pub fn storage_operation(&self, operation: &str, took: Duration) {
        self.storage_seconds
            .with_label_values(&[operation])
            .observe(took.as_secs_f64());
    }

    /// From now on `/healthz` fails: the daemon is draining.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the daemon is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// A gauge of live state, set before a scrape.
    pub fn set_gauge(gauge: &IntGauge, value: usize) {
        gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    }
}
