//! The how-to's nginx + Rocket.toml pair (`docs/howto.md`, "nginx in front"), run for real:
//! both blocks are read out of the page between their `howto:` markers, so the page and
//! this test cannot drift. A real nginx on a free 127.0.0.1 port proxies to the app; clients
//! send from chosen 127.0.0.x source addresses.

mod common;

use common::process::free_port;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rocket::figment::providers::{Format, Toml};
use rocket::figment::Figment;
use rocket::{get, routes};
use rocket_allow::{AllowFairing, ClientIp};

/// The fenced block between `<!-- howto:NAME:begin -->` and `<!-- howto:NAME:end -->`.
fn block(page: &str, name: &str) -> String {
    let begin = format!("<!-- howto:{name}:begin -->");
    let end = format!("<!-- howto:{name}:end -->");
    let start = page.find(&begin).expect("begin marker") + begin.len();
    let stop = start + page[start..].find(&end).expect("end marker");
    let fenced = page[start..stop].trim();
    let body = fenced.split_once('\n').expect("a fence line").1;
    body.strip_suffix("```")
        .expect("a closing fence")
        .to_string()
}

/// `text` with `from` replaced by `to`, which must be there.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the page no longer has `{from}`");
    text.replace(from, to)
}

fn nginx_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
        .expect("nginx is not installed: `apt-get install nginx-light` (what .ci/run does)")
}

/// A running nginx; stopped (by its PID) when dropped.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(server_block: &str, port: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n    \
             proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
             uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n{server_block}\n}}\n"
        );
        let file = dir.path().join("nginx.conf");
        std::fs::write(&file, conf).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 10 s: {}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` to 127.0.0.1:`port` from the source address `from`, with extra header lines;
/// the status and the body.
fn get(from: &str, port: u16, path: &str, headers: &[&str]) -> (u16, String) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = (from.parse::<std::net::IpAddr>().unwrap(), 0).into();
    socket.bind(&local.into()).expect("bind the source address");
    let server: SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect(&server.into()).expect("connect");
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: app.example.com\r\n");
    for h in headers {
        req += h;
        req += "\r\n";
    }
    req += "Connection: close\r\n\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    (status, body.to_string())
}

#[get("/")]
fn index(ip: ClientIp) -> String {
    ip.to_string()
}

#[get("/healthz")]
fn healthz() -> &'static str {
    "ok"
}

#[test]
fn the_howto_nginx_pair_admits_the_office_refuses_forgers_and_lets_the_probe_in() {
    let page = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/howto.md"))
        .unwrap();
    // The office is 127.0.0.2 here: a source address this machine can send from.
    let toml = replaced(&block(&page, "rocket"), "198.51.100.0/24", "127.0.0.2");
    let figment = Figment::from(rocket::Config::default()).merge(Toml::string(&toml).nested());
    let app = common::http::serve(
        rocket::custom(figment)
            .attach(AllowFairing::fairing())
            .mount("/", routes![index, healthz]),
    );

    let port = free_port();
    let server = block(&page, "nginx");
    let server = replaced(&server, "listen 80;", &format!("listen 127.0.0.1:{port};"));
    let server = replaced(
        &server,
        "proxy_pass http://127.0.0.1:8000;",
        &format!("proxy_pass http://127.0.0.1:{};", app.port),
    );
    let nginx = Nginx::start(&server, port);

    // The office, through nginx: admitted, and the app sees the client, not nginx.
    assert_eq!(get("127.0.0.2", port, "/", &[]), (200, "127.0.0.2".into()));
    // Anyone else, through nginx: refused.
    assert_eq!(get("127.0.0.3", port, "/", &[]).0, 403);
    // A forged header cannot get it in: nginx appends the address it saw.
    for forged in [
        "X-Forwarded-For: 127.0.0.2",
        "X-Forwarded-For: 127.0.0.1, 127.0.0.2",
        "X-Real-IP: 127.0.0.2",
        "Forwarded: for=127.0.0.2",
    ] {
        assert_eq!(get("127.0.0.3", port, "/", &[forged]).0, 403, "{forged}");
    }
    // The office's own header changes nothing for it either.
    assert_eq!(
        get("127.0.0.2", port, "/", &["X-Forwarded-For: 127.0.0.9"]),
        (200, "127.0.0.2".into())
    );
    // /healthz through nginx from outside: the client is not 127.0.0.1.
    assert_eq!(get("127.0.0.3", port, "/healthz", &[]).0, 403);

    // The probe on the proxy's machine: from 127.0.0.1 (a trusted proxy) without a header.
    assert_eq!(
        get("127.0.0.1", app.port, "/healthz", &[]),
        (200, "ok".into())
    );
    // Header-less from the proxy anywhere else: refused.
    assert_eq!(get("127.0.0.1", app.port, "/", &[]).0, 403);

    // nginx did the proxying: its own access log has the clients.
    let access = std::fs::read_to_string(nginx.dir.path().join("access.log")).unwrap();
    assert!(
        access.contains("127.0.0.2 - ") && access.contains("127.0.0.3 - "),
        "{access}"
    );
    let log = nginx.error_log();
    drop(nginx);
    assert!(!log.contains("[emerg]"), "{log}");
    app.stop().unwrap();
}
