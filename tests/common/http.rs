//! A launched Rocket on 127.0.0.1 at a free port, and raw bytes over TCP: for inputs the
//! local client cannot express (header bytes that are not UTF-8, real shutdown).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::{Build, Ignite, Rocket, Shutdown};

/// A running app. Dropping it does not stop it; call [`Server::stop`].
pub struct Server {
    pub port: u16,
    /// The app's runtime API, when the fairing is attached.
    pub allow: Option<rocket_allow::AllowHandle>,
    shutdown: Shutdown,
    thread: JoinHandle<Result<Option<Rocket<Ignite>>, String>>,
}

/// `rocket` set to listen on 127.0.0.1 at a port the OS picks (`config().port` at liftoff).
pub fn on_free_port(rocket: Rocket<Build>) -> Rocket<Build> {
    let figment = rocket
        .figment()
        .clone()
        .merge(("address", "127.0.0.1"))
        .merge(("port", 0));
    rocket.configure(figment)
}

/// Launches `rocket` on 127.0.0.1 at a port the OS picks, and waits (10 s at most) until it serves.
pub fn serve(rocket: Rocket<Build>) -> Server {
    let (tx, rx) = mpsc::channel();
    let rocket = on_free_port(rocket).attach(AdHoc::on_liftoff("port", move |r| {
        let allow = r.state::<rocket_allow::AllowHandle>().cloned();
        let _ = tx.send((r.config().port, r.shutdown(), allow));
        Box::pin(async {})
    }));
    let thread = std::thread::spawn(move || {
        match rocket::execute(rocket.launch()) {
            Ok(rocket) => Ok(Some(rocket)),
            // Rocket 0.5 ends `launch` with this when a connection's task still held the app
            // the moment its server future ended (a race inside Rocket on a loaded machine,
            // seen once in CI): the app did stop.
            Err(e) if matches!(e.kind(), rocket::error::ErrorKind::Shutdown(..)) => Ok(None),
            Err(e) => Err(format!("launch failed: {e}")),
        }
    });
    let (port, shutdown, allow) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the app did not lift off within 10 s");
    Server {
        port,
        allow,
        shutdown,
        thread,
    }
}

impl Server {
    /// Asks Rocket to shut down (what SIGTERM does) and waits for `launch` to return.
    /// `Ok(None)`: it stopped, but Rocket could not hand the instance back (see above).
    pub fn stop(self) -> Result<Option<Rocket<Ignite>>, String> {
        self.shutdown.notify();
        self.thread.join().expect("the server thread panicked")
    }

    /// Sends `request` as raw bytes on a new connection and returns the whole response
    /// (the request should say `Connection: close`).
    pub fn raw(&self, request: &[u8]) -> Response {
        self.raw_from("127.0.0.1", request)
    }

    /// [`raw`](Self::raw) from the source address `from` (any 127.0.0.0/8 address).
    pub fn raw_from(&self, from: &str, request: &[u8]) -> Response {
        send_from(self.port, from, request).expect("an answer")
    }

    /// `METHOD path` with these extra header lines (raw bytes, no CRLF) and `Connection: close`.
    pub fn request(&self, method: &str, path: &str, headers: &[&[u8]]) -> Response {
        self.request_from("127.0.0.1", method, path, headers)
    }

    /// [`request`](Self::request) from the source address `from`.
    pub fn request_from(
        &self,
        from: &str,
        method: &str,
        path: &str,
        headers: &[&[u8]],
    ) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n").into_bytes();
        for h in headers {
            req.extend_from_slice(h);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"Connection: close\r\nContent-Length: 0\r\n\r\n");
        self.raw_from(from, &req)
    }
}

/// The status of one request for `client` through a trusted proxy at 127.0.0.1 (sent from
/// 127.0.0.1 with `X-Forwarded-For: client`).
pub fn via_proxy(s: &Server, method: &str, path: &str, client: &str) -> u16 {
    let xff = format!("X-Forwarded-For: {client}");
    s.request_from("127.0.0.1", method, path, &[xff.as_bytes()])
        .status
}

/// Sends `request` (raw bytes) to 127.0.0.1:`port` from the source address `from` (any
/// 127.0.0.0/8 address) on a new connection, and reads the whole response; `None` when
/// nothing listens there or nothing came back.
pub fn send_from(port: u16, from: &str, request: &[u8]) -> Option<Response> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    let local: std::net::SocketAddr = (from.parse::<std::net::IpAddr>().ok()?, 0).into();
    socket.bind(&local.into()).ok()?;
    let server: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    socket
        .connect_timeout(&server.into(), Duration::from_secs(2))
        .ok()?;
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    // No half-close: hyper drops a connection whose client stops sending before it answers.
    s.write_all(request).ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    // Not an answer: nothing, or our own bytes (a connect to a port nobody listens on can
    // meet itself: TCP self-connect).
    out.starts_with(b"HTTP/").then(|| Response::parse(&out))
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    fn parse(bytes: &[u8]) -> Response {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
        Response {
            status,
            head: head.to_string(),
            body: body.to_string(),
        }
    }
}
