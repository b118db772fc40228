//! `wxrest::server::Server` over real sockets: slow clients are cut off at the header deadline,
//! connections are bounded without starving the next client for long, the peer address reaches
//! handlers, and a development fake refuses to serve a public address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::{Router, routing::get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wxrest::server::{ServeError, Server};

fn app() -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
}

/// Serves `app()` with `server` on a loopback port until the test ends.
async fn start(server: Server) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        server
            .serve(listener, app(), std::future::pending())
            .await
            .unwrap();
    });
    addr
}

/// One GET over a fresh connection: the raw response text.
async fn get_raw(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

/// Sends half a request head and returns the open connection.
async fn half_request(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: slow")
        .await
        .unwrap();
    stream
}

/// Reads until the server closes the connection; `Err` when it is still open at `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Result<(), ()> {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .map_err(|_| ())
}

#[tokio::test]
async fn a_client_sending_half_a_request_head_is_disconnected_at_the_deadline() {
    let addr = start(Server::new().header_read_timeout(Duration::from_millis(500))).await;
    let mut slow = half_request(addr).await;
    let started = Instant::now();
    closed_within(&mut slow, Duration::from_secs(10))
        .await
        .expect("the server closes a connection whose head never completes");
    assert!(started.elapsed() >= Duration::from_millis(400));
    // Meanwhile and afterwards, others are served.
    assert!(get_raw(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_at_the_deadline() {
    let addr = start(Server::new().header_read_timeout(Duration::from_millis(500))).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    closed_within(&mut stream, Duration::from_secs(10))
        .await
        .expect("an idle keep-alive connection does not stay open forever");
}

#[tokio::test]
async fn connections_are_bounded_and_slow_ones_free_their_slots() {
    let addr = start(
        Server::new()
            .header_read_timeout(Duration::from_millis(700))
            .max_connections(3),
    )
    .await;
    // Three slow clients take every slot ...
    let _slow: Vec<TcpStream> =
        futures_util::future::join_all((0..3).map(|_| half_request(addr))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ... so a fourth waits in the backlog until the deadline frees one, then is served.
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), get_raw(addr, "/healthz"))
        .await
        .expect("served once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "served before any slot was free: the bound did not hold"
    );
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let addr = start(Server::new()).await;
    assert!(get_raw(addr, "/peer").await.ends_with("127.0.0.1"));
}

#[tokio::test]
async fn a_running_fake_refuses_a_public_address_unless_development_is_on() {
    let fake = wxrest::wechat::FakeWeChat::builder()
        .dev_mode(true)
        .start()
        .await;
    let public = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let refused = Server::new()
        .serve(public, app(), std::future::pending())
        .await;
    match refused {
        Err(ServeError::DevelopmentOnPublicAddress { fakes, .. }) => {
            assert!(fakes.contains("FakeWeChat"), "{fakes}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Loopback is fine, and so is an explicit development switch.
    let loopback = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(Server::new().serve(loopback, app(), async move {
        let _ = stopped.await;
    }));
    let public = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let (stop2, stopped2) = tokio::sync::oneshot::channel::<()>();
    let served2 = tokio::spawn(
        Server::new()
            .development(true)
            .serve(public, app(), async move {
                let _ = stopped2.await;
            }),
    );
    stop.send(()).unwrap();
    stop2.send(()).unwrap();
    assert!(served.await.unwrap().is_ok());
    assert!(served2.await.unwrap().is_ok());
    drop(fake);
}
