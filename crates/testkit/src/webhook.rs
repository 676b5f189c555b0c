//! An HTTP receiver on a loopback port that records every request, for
//! tests of webhook delivery.
//!
//! It answers 200 unless told to fail the next requests (500 by default,
//! or any status, e.g. 400 to test a permanent refusal), and records what
//! it answered. It must not be used outside tests: no authentication, no
//! TLS, no size or rate limits beyond axum's defaults. It stops when
//! dropped.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
};
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
    task::JoinHandle,
};

/// What can go wrong in a test with the receiver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fewer requests arrived than awaited.
    #[error("timed out after {timeout:?} waiting for {wanted} requests; got {got}")]
    Timeout {
        /// How many were awaited.
        wanted: usize,
        /// How many came.
        got: usize,
        /// How long it waited.
        timeout: Duration,
    },
    /// The listener could not be bound.
    #[error("cannot bind the webhook receiver: {0}")]
    Bind(#[from] std::io::Error),
}

/// One request as received, with the status it was answered.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// The HTTP method.
    pub method: Method,
    /// The path and query.
    pub uri: Uri,
    /// The request headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// What the receiver answered.
    pub status: StatusCode,
}

impl ReceivedRequest {
    /// A header as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the receiver answered 2xx.
    pub fn succeeded(&self) -> bool {
        self.status.is_success()
    }
}

struct Shared {
    requests: watch::Sender<Vec<ReceivedRequest>>,
    /// Statuses for the next requests, in order; 200 once empty.
    failures: Mutex<VecDeque<StatusCode>>,
}

/// The running receiver. Dropping it stops it.
pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.abort();
    }
}

impl WebhookReceiver {
    /// Starts on `127.0.0.1` with a free port; any method on any path is
    /// recorded.
    pub async fn start() -> Result<WebhookReceiver, Error> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            requests: watch::channel(Vec::new()).0,
            failures: Mutex::new(VecDeque::new()),
        });
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&shared));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "webhook receiver stopped");
            }
        });
        Ok(WebhookReceiver {
            addr,
            shared,
            shutdown: Some(shutdown),
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answers the next `n` requests with 500.
    pub fn fail_next(&self, n: usize) {
        self.respond_next(n, StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// Answers the next `n` requests with `status`.
    pub fn respond_next(&self, n: usize, status: StatusCode) {
        let mut failures = self
            .shared
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        failures.extend(std::iter::repeat_n(status, n));
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.requests.borrow().clone()
    }

    /// The requests answered 2xx.
    pub fn successes(&self) -> Vec<ReceivedRequest> {
        self.requests()
            .into_iter()
            .filter(ReceivedRequest::succeeded)
            .collect()
    }

    /// Waits until at least `n` requests (answered anyhow) have arrived,
    /// then returns all.
    pub async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedRequest>, Error> {
        let mut rx = self.shared.requests.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|r| r.len() >= n)).await {
            Ok(Ok(requests)) => Ok(requests.clone()),
            _ => Err(Error::Timeout {
                wanted: n,
                got: self.shared.requests.borrow().len(),
                timeout,
            }),
        }
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let status = shared
        .failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop_front()
        .unwrap_or(StatusCode::OK);
    shared.requests.send_modify(|requests| {
        requests.push(ReceivedRequest {
            method,
            uri,
            headers,
            body,
            status,
        });
    });
    status
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn post(addr: SocketAddr, body: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "POST /hook HTTP/1.1\r\nHost: test\r\nX-Test: ja\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
    }

    #[tokio::test]
    async fn it_fails_the_first_requests_then_succeeds_and_records_all() {
        let receiver = WebhookReceiver::start().await.expect("start");
        receiver.fail_next(1);
        assert!(
            post(receiver.addr(), "ett")
                .await
                .starts_with("HTTP/1.1 500")
        );
        assert!(
            post(receiver.addr(), "två")
                .await
                .starts_with("HTTP/1.1 200")
        );
        let requests = receiver
            .wait_for(2, Duration::from_secs(5))
            .await
            .expect("two requests");
        assert_eq!(requests[0].status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(requests[1].text(), "två");
        assert_eq!(requests[1].header("x-test"), Some("ja"));
        assert_eq!(requests[1].uri.path(), "/hook");
        assert_eq!(receiver.successes().len(), 1);
        assert!(
            receiver
                .wait_for(3, Duration::from_millis(50))
                .await
                .is_err()
        );
    }
}
