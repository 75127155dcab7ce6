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

/// A certificate for app.example.com, made with the openssl command: `(cert, key)` in `dir`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=app.example.com"])
        .args(["-addext", "subjectAltName=DNS:app.example.com"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(out.status.success(), "openssl: {out:?}");
    (cert, key)
}

/// A request to nginx's TLS listener on `port` as a browser at https://app.example.com
/// sends it (`Host: app.example.com`, as on port 443), from the source address `from`,
/// with curl trusting `ca`; a form `body` makes it a POST. The status, the head and the body.
fn https(
    from: &str,
    port: u16,
    ca: &Path,
    path: &str,
    body: Option<&str>,
    headers: &[String],
) -> (u16, String, String) {
    let mut curl = Command::new("curl");
    curl.args([
        "-sS",
        "-i",
        "--http1.1",
        "--max-time",
        "10",
        "--interface",
        from,
    ])
    .arg("--cacert")
    .arg(ca)
    .arg("--resolve")
    .arg(format!("app.example.com:{port}:127.0.0.1"))
    .args(["-H", "Host: app.example.com"]);
    for h in headers {
        curl.args(["-H", h]);
    }
    if let Some(body) = body {
        curl.args(["--data-raw", body]);
    }
    let out = curl
        .arg(format!("https://app.example.com:{port}{path}"))
        .stdin(Stdio::null())
        .output()
        .expect("curl is installed (.ci/run installs it)");
    assert!(out.status.success(), "curl {path}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    (status, head.to_string(), body.to_string())
}

#[rocket::catch(403)]
fn reason(req: &rocket::Request<'_>) -> String {
    match rocket_allow::Refused::of(req) {
        Some(r) => format!("{r}\n{:?}\n", r.by),
        None => "Forbidden, no reason\n".into(),
    }
}

/// The how-to's admin page behind nginx terminating TLS (`docs/howto.md`, "The admin page
/// behind nginx, over HTTPS"), both blocks read out of the page: the page's own forms work
/// over HTTPS and its cookie is `Secure`; without `hosts` the catcher says why it is 403.
#[test]
fn the_howto_admin_page_behind_nginx_over_https() {
    let page = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/howto.md"))
        .unwrap();
    // The office is 127.0.0.0/29 here, the operator's machine 127.0.0.2.
    let toml = format!(
        "{}\n{}",
        replaced(&block(&page, "rocket"), "198.51.100.0/24", "127.0.0.0/29"),
        replaced(&block(&page, "admin"), "198.51.100.7", "127.0.0.2")
    );
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let port = free_port();
    let server = block(&page, "nginx-tls");
    let server = replaced(
        &server,
        "listen 443 ssl;",
        &format!("listen 127.0.0.1:{port} ssl;"),
    );
    let server = replaced(
        &server,
        "/etc/letsencrypt/live/app.example.com/fullchain.pem",
        &cert.display().to_string(),
    );
    let server = replaced(
        &server,
        "/etc/letsencrypt/live/app.example.com/privkey.pem",
        &key.display().to_string(),
    );
    let start = |toml: &str| {
        let figment = Figment::from(rocket::Config::default()).merge(Toml::string(toml).nested());
        let app = common::http::serve(
            rocket::custom(figment)
                .attach(AllowFairing::fairing())
                .mount("/", routes![index, healthz])
                .mount("/allow", rocket_allow::admin::routes())
                .register("/", rocket::catchers![reason]),
        );
        let proxied = replaced(
            &server,
            "proxy_pass http://127.0.0.1:8000;",
            &format!("proxy_pass http://127.0.0.1:{};", app.port),
        );
        (app, Nginx::start(&proxied, port))
    };

    // Without `hosts`: 403 for the operator too, and the catcher says why.
    let (app, nginx) = start(&replaced(&toml, r#"hosts = ["app.example.com"]"#, ""));
    let (status, _, body) = https("127.0.0.2", port, &cert, "/allow/", None, &[]);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains(r#"Host { host: "app.example.com" }"#)
            && body.contains("[allow.admin] hosts"),
        "{body}"
    );
    drop(nginx);
    app.stop().unwrap();

    // As the how-to has it.
    let (app, nginx) = start(&toml);
    let allow = app.allow.clone().unwrap();
    // A client's own X-Forwarded-Proto is overwritten by nginx.
    let spoof = ["X-Forwarded-Proto: http".to_string()];
    let (status, head, body) = https("127.0.0.2", port, &cert, "/allow/bans", None, &spoof);
    assert_eq!(status, 200, "{head}\n{body}");
    let set_cookie = head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: rocket_allow_csrf=")
        })
        .unwrap_or_else(|| panic!("no csrf cookie: {head}"));
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let cookie = set_cookie
        .split_once('=')
        .and_then(|(_, v)| v.split(';').next())
        .unwrap()
        .to_string();
    const FIELD: &str = r#"name="csrf" value=""#;
    let at = body.find(FIELD).expect("the ban form") + FIELD.len();
    let token = body[at..].split('"').next().unwrap().to_string();
    let form = |origin: &str| {
        vec![
            format!("Cookie: rocket_allow_csrf={cookie}"),
            format!("Origin: {origin}"),
            "Sec-Fetch-Site: same-origin".to_string(),
        ]
    };
    let ban = |target: &str| format!("csrf={token}&target={target}&duration=3600&reason=x");
    // The page's own form, from https://app.example.com: made.
    let own = form("https://app.example.com");
    let (status, head, _) = https(
        "127.0.0.2",
        port,
        &cert,
        "/allow/bans",
        Some(&ban("127.0.0.9")),
        &own,
    );
    assert_eq!(status, 303, "{head}");
    assert!(allow.is_banned("127.0.0.9".parse().unwrap()).is_some());
    // The same form from the site's plain-http origin: another origin, refused.
    let plain = form("http://app.example.com");
    let (status, ..) = https(
        "127.0.0.2",
        port,
        &cert,
        "/allow/bans",
        Some(&ban("127.0.0.10")),
        &plain,
    );
    assert_eq!(status, 403);
    assert!(allow.is_banned("127.0.0.10".parse().unwrap()).is_none());
    // A ban on nginx would lock the operator out: refused.
    let (status, _, body) = https(
        "127.0.0.2",
        port,
        &cert,
        "/allow/bans",
        Some(&ban("127.0.0.1")),
        &own,
    );
    assert_eq!(status, 400, "{body}");
    // The office, not the operator: refused by `ops`.
    let (status, _, body) = https("127.0.0.4", port, &cert, "/allow/", None, &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("policy ops"), "{body}");
    assert_eq!(https("127.0.0.4", port, &cert, "/", None, &[]).0, 200);
    let log = nginx.error_log();
    drop(nginx);
    assert!(!log.contains("[emerg]"), "{log}");
    app.stop().unwrap();
}
