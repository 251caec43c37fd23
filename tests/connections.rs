//! Slow and idle clients: header, body, request and idle timeouts, and the
//! cap on open connections, against the server's own accept loop.

use std::time::{Duration, Instant};

use crm::Config;
use hyper::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestApp;

/// What the server sends until it closes the connection, and how long
/// that took; `None` when it is still open after `within`.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<(String, Duration)> {
    let started = Instant::now();
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            received.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    read.ok()
        .map(|()| (String::from_utf8_lossy(&received).into_owned(), started.elapsed()))
}

/// One response read off a kept-alive connection (it has a Content-Length).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a response within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "closed before a whole response: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse().ok())
                .expect("a content-length");
            if body.len() >= length {
                return text;
            }
        }
    }
}

/// A connection that has sent part of a request's headers.
async fn half_sent(app: &TestApp) -> TcpStream {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"POST /graphql HTTP/1.1\r\nhost: localhost\r\ncontent-ty")
        .await
        .unwrap();
    stream
}

#[tokio::test]
async fn headers_that_stop_halfway_or_trickle_are_cut_off_at_the_header_timeout() {
    let app = TestApp::start_with(Config {
        header_timeout: Duration::from_millis(500),
        ..Config::default()
    })
    .await;
    let mut stopped = half_sent(&app).await;
    // One byte every 100 ms: always progressing, never done.
    let mut trickling = half_sent(&app).await;
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if trickling.write_all(b"x").await.is_err() {
                return true;
            }
        }
        false
    });
    let (sent, after) = until_closed(&mut stopped, Duration::from_secs(10))
        .await
        .expect("a half-sent request is closed within 10 s");
    assert_eq!(sent, "", "closed without an answer");
    assert!(after >= Duration::from_millis(400), "closed after {after:?}");
    assert!(trickle.await.unwrap(), "a trickle of header bytes is closed too");
    // Meanwhile, and after, requests are answered.
    assert_eq!(app.data("{ __typename }", json!({})).await["__typename"], "Query");
}

#[tokio::test]
async fn a_kept_alive_connection_waits_for_the_idle_timeout_not_the_header_timeout() {
    let app = TestApp::start_with(Config {
        header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(1500),
        ..Config::default()
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n";
    stream.write_all(request).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Idle longer than the header timeout: still open for the next request.
    tokio::time::sleep(Duration::from_millis(700)).await;
    stream.write_all(request).await.unwrap();
    let second = read_response(&mut stream).await;
    assert!(
        second.starts_with("HTTP/1.1 200") && second.ends_with("ok\n"),
        "{second}"
    );
    // Then closed once idle for the idle timeout.
    let (sent, after) = until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("an idle connection is closed within 10 s");
    assert_eq!(sent, "");
    assert!(after >= Duration::from_millis(1200), "closed after {after:?}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_after_the_idle_timeout() {
    let app = TestApp::start_with(Config {
        idle_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // 64 pipelined requests for a 1 MB file, far more than socket buffers hold.
    let request = b"GET /graphql/assets/graphiql.min.js HTTP/1.1\r\nhost: localhost\r\n\r\n";
    stream.write_all(&request.repeat(64)).await.unwrap();
    // Not reading for a while: the server's writes stall, then it gives up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (sent, _) = until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("closed within 10 s");
    let answered = sent.matches("HTTP/1.1 200").count();
    assert!(answered < 64, "{answered} responses");
}

#[tokio::test]
async fn a_body_that_stops_halfway_gets_408_timeout_after_the_body_timeout() {
    let app = TestApp::start_with(Config {
        body_timeout: Duration::from_millis(500),
        ..Config::default()
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         authorization: Bearer {}\r\ncontent-length: 100\r\n\r\n{{\"query\":",
        app.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (sent, after) = until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("answered and closed within 10 s");
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    assert!(after >= Duration::from_millis(400), "answered after {after:?}");
    let body: serde_json::Value = serde_json::from_str(sent.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT", "{body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("body"),
        "{body}"
    );
}

#[tokio::test]
async fn a_request_not_answered_in_time_gets_503_timeout() {
    use diesel_async::{AsyncConnection, SimpleAsyncConnection};
    let app = TestApp::start_with(Config {
        request_timeout: Duration::from_millis(500),
        ..Config::default()
    })
    .await;
    // Another session holds the accounts table: the query waits on it.
    let mut blocker = diesel_async::AsyncPgConnection::establish(&app.database_url)
        .await
        .unwrap();
    blocker
        .batch_execute("BEGIN; LOCK TABLE crm.account IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let body = json!({ "query": "{ accounts { totalCount } }" })
        .to_string()
        .into_bytes();
    let response = app
        .request(Method::POST, "/graphql", &[("content-type", "application/json")], body)
        .await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{}", response.text());
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(started.elapsed() < Duration::from_secs(10));
    let error = &response.json()["errors"][0];
    assert_eq!(error["extensions"]["code"], "TIMEOUT", "{error}");
    assert!(error["message"].as_str().unwrap().contains("500 ms"), "{error}");
    // Once the table is free, the same query is answered.
    blocker.batch_execute("ROLLBACK").await.unwrap();
    let count = app.data("{ accounts { totalCount } }", json!({})).await;
    assert_eq!(count["accounts"]["totalCount"], 0);
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_slow_ones_are_cut_off() {
    let cap = 32;
    let app = TestApp::start_with(Config {
        max_connections: cap,
        header_timeout: Duration::from_secs(2),
        ..Config::default()
    })
    .await;
    // The open-file limit was raised to its hard limit.
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let files = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let numbers: Vec<&str> = files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers[0], numbers[1], "{files}");

    // Slow clients up to one below the cap: requests are still answered at once.
    let mut slow = Vec::new();
    for _ in 0..cap - 1 {
        slow.push(half_sent(&app).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(app.data("{ __typename }", json!({})).await["__typename"], "Query");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

    // At the cap, the next connection waits until the header timeout
    // frees a slot, then is answered.
    slow.push(half_sent(&app).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let waiting = tokio::spawn({
        let (addr, token) = (app.addr, app.token.clone());
        async move {
            let bearer = format!("Bearer {token}");
            let body = json!({ "query": "{ __typename }" }).to_string().into_bytes();
            let headers = [("content-type", "application/json"), ("authorization", bearer.as_str())];
            crate::support::http_request(addr, Method::POST, "/graphql", &headers, body).await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a connection past the cap was served at once");
    let response = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert!(started.elapsed() >= Duration::from_millis(500));
    for mut stream in slow {
        assert!(until_closed(&mut stream, Duration::from_secs(5)).await.is_some());
    }
}
