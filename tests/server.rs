//! `wxrest::server::Server` over real sockets: slow clients are cut off at the header deadline,
//! clients that do not read at the write deadline, connections are bounded (in all and per
//! client address) without starving the next client for long, the peer address reaches
//! handlers, and a development fake refuses to serve without the development switch.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::{Router, routing::get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use wxrest::server::{ServeError, Server};

/// The body of `/big`: far more than a socket's buffers hold.
const BIG: usize = 1 << 20;

fn app() -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/big", get(|| async { vec![b'x'; BIG] }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
}

/// Serves `app()` with `server` on a loopback port until the test ends. Development is on:
/// the fake another test of this process runs would stop the server otherwise.
async fn start(server: Server) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        server
            .development(true)
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
async fn a_running_fake_refuses_to_serve_any_address_unless_development_is_on() {
    let fake = wxrest::wechat::FakeWeChat::builder()
        .dev_mode(true)
        .start()
        .await;
    // Loopback too: behind a reverse proxy, a loopback address serves the public.
    for addr in ["0.0.0.0:0", "127.0.0.1:0"] {
        let listener = TcpListener::bind(addr).await.unwrap();
        let refused = Server::new()
            .serve(listener, app(), std::future::pending())
            .await;
        match refused {
            Err(ServeError::DevelopmentNotSwitchedOn { fakes, .. }) => {
                assert!(fakes.contains("FakeWeChat"), "{addr}: {fakes}")
            }
            other => panic!("{addr}: expected a refusal, got {other:?}"),
        }
    }
    // An explicit development switch serves, on any address.
    let loopback = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(
        Server::new()
            .development(true)
            .serve(loopback, app(), async move {
                let _ = stopped.await;
            }),
    );
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

/// A client that pipelines `requests` GETs of `/big` and never reads: its socket's receive
/// buffer is small, so the server's writes soon stop.
async fn pipelining_non_reader(addr: SocketAddr, requests: usize) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let pipeline = "GET /big HTTP/1.1\r\nhost: x\r\n\r\n".repeat(requests);
    stream.write_all(pipeline.as_bytes()).await.unwrap();
    stream
}

/// Reads until the connection ends (close or reset): how many bytes arrived.
async fn drain(stream: &mut TcpStream) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n,
        }
    }
}

#[tokio::test]
async fn clients_that_pipeline_and_never_read_are_cut_at_the_write_deadline() {
    let addr = start(
        Server::new()
            .write_timeout(Duration::from_millis(500))
            .max_connections(2),
    )
    .await;
    // Two clients that never read hold every slot, their responses stuck in the socket ...
    let requests = 32;
    let mut stuck = Vec::new();
    for _ in 0..2 {
        stuck.push(pipelining_non_reader(addr, requests).await);
    }
    // ... until the write deadline closes them: a new client is then served.
    let answer = tokio::time::timeout(Duration::from_secs(20), get_raw(addr, "/healthz"))
        .await
        .expect("served once the clients that do not read are cut");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for mut stream in stuck {
        let got = tokio::time::timeout(Duration::from_secs(20), drain(&mut stream))
            .await
            .expect("the connection was closed");
        assert!(
            got < requests * BIG,
            "all {got} bytes were delivered: the connection was not cut"
        );
    }
}

#[tokio::test]
async fn a_slow_but_reading_client_gets_its_whole_response() {
    let addr = start(Server::new().write_timeout(Duration::from_secs(5))).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    // A pause shorter than the deadline, then reading to the end.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = drain(&mut stream).await;
    assert!(got > BIG, "{got} bytes");
}

/// A connection from `local` (a loopback address of this host) to `addr`.
async fn connect_from(local: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((local, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// One GET of `/peer` from `local`: the raw answer, empty when the connection was reset.
async fn get_from(local: [u8; 4], addr: SocketAddr) -> String {
    let mut stream = connect_from(local, addr).await;
    let _ = stream
        .write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn one_address_cannot_hold_more_connections_than_its_cap() {
    let addr = start(Server::new().max_connections_per_peer(2)).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_from([127, 0, 0, 1], addr).await;
        stream.write_all(b"GET /peer HTTP/1.1\r\n").await.unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third from the same address is refused (429, or a reset when it arrives first) ...
    let refused = get_from([127, 0, 0, 1], addr).await;
    assert!(
        refused.is_empty() || refused.starts_with("HTTP/1.1 429"),
        "{refused}"
    );
    assert!(
        !refused.contains("too_many") || refused.contains("\"code\": \"too_many_connections\"")
    );
    // ... while another address is served ...
    let other = get_from([127, 0, 0, 2], addr).await;
    assert!(
        other.starts_with("HTTP/1.1 200") && other.ends_with("127.0.0.2"),
        "{other}"
    );
    // ... and a closed connection gives the first address its place back.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get_from([127, 0, 0, 1], addr).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_per_address_cap_can_be_turned_off() {
    let addr = start(Server::new().max_connections_per_peer(0)).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut stream = connect_from([127, 0, 0, 1], addr).await;
        stream.write_all(b"GET /peer HTTP/1.1\r\n").await.unwrap();
        held.push(stream);
    }
    let answer = get_from([127, 0, 0, 1], addr).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
