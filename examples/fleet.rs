//! Several instances sharing bans through Redis (`[allow.store]`).
//!
//! `cargo run --example fleet` shows it: it starts a `redis-server` on a free loopback
//! port (Debian: `apt-get install redis-server`), two instances of this app on ports 8101
//! and 8102, bans 127.0.0.2 on the first, and shows the second refusing it within
//! milliseconds; then it stops them all.
//!
//! With `FLEET_INSTANCE` set it is one instance: `ROCKET_CONFIG` names its configuration
//! (`examples/fleet.toml` by default) and `ROCKET_*` variables apply, so the tests launch
//! it as separate processes. Its routes, for 127.0.0.1 only (`Allowed<Ops>`):
//! `POST /ban/<ip>?<secs>&<reason>`, `POST /unban/<ip>`, `POST /block/<ip>` (the inline set
//! `blocked` becomes `[ip]`), `POST /mode/<mode>`, `POST /flush` (`flush_bans`),
//! `POST /strike/<ip>` (a failed login: the automatic-ban rule `login`), `GET /banned/<ip>`,
//! `GET /status`; and `GET /` for anyone the rules admit.

#[macro_use]
extern crate rocket;

use std::net::IpAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rocket::figment::providers::{Env, Format, Toml};
use rocket::State;
use rocket_allow::{AllowFairing, AllowHandle, Allowed, Mode, Policy};

/// `[allow.policies.ops]`: who may change the fleet's state.
struct Ops;
impl Policy for Ops {
    const NAME: &'static str = "ops";
}

#[get("/")]
fn index() -> &'static str {
    "hello\n"
}

#[post("/ban/<ip>?<secs>&<reason>")]
fn ban(
    ip: IpAddr,
    secs: Option<u64>,
    reason: Option<&str>,
    _ok: Allowed<Ops>,
    allow: &State<AllowHandle>,
) -> String {
    let reason = reason.unwrap_or("from /ban");
    match secs {
        Some(s) => allow.ban_for(ip, Duration::from_secs(s), reason),
        None => allow.ban_until_lifted(ip, reason),
    }
    format!("banned {ip}\n")
}

#[post("/unban/<ip>")]
fn unban(ip: IpAddr, _ok: Allowed<Ops>, allow: &State<AllowHandle>) -> String {
    format!("lifted: {}\n", allow.lift(ip))
}

#[post("/block/<ip>")]
fn block(ip: IpAddr, _ok: Allowed<Ops>, allow: &State<AllowHandle>) -> Result<String, String> {
    allow
        .replace_set("blocked", &[ip.to_string()])
        .map(|()| format!("blocked {ip}\n"))
        .map_err(|e| e.to_string())
}

#[post("/mode/<mode>")]
fn mode(mode: &str, _ok: Allowed<Ops>, allow: &State<AllowHandle>) -> Result<String, String> {
    let mode = if mode == "report" {
        Mode::Report
    } else {
        Mode::Enforce
    };
    allow
        .set_mode(None, mode)
        .map(|()| "ok\n".into())
        .map_err(|e| e.to_string())
}

#[get("/status")]
fn status(_ok: Allowed<Ops>, allow: &State<AllowHandle>) -> String {
    format!("{:?}\n", allow.store_status())
}

/// One failed login of `ip` (the automatic-ban rule `login`): whether it is banned now.
#[post("/strike/<ip>")]
fn strike(ip: IpAddr, _ok: Allowed<Ops>, allow: &State<AllowHandle>) -> String {
    format!("{:?}\n", allow.strike("login", ip))
}

/// Whether `ip` is banned here.
#[get("/banned/<ip>")]
fn banned(ip: IpAddr, _ok: Allowed<Ops>, allow: &State<AllowHandle>) -> String {
    format!("{}\n", allow.is_banned(ip).is_some())
}

/// `flush_bans()`: every change so far is in the bans file (if one is set).
#[post("/flush")]
fn flush(_ok: Allowed<Ops>, allow: &State<AllowHandle>) -> Result<&'static str, String> {
    allow
        .flush_bans()
        .map(|()| "saved\n")
        .map_err(|e| e.to_string())
}

/// One instance.
fn instance() -> rocket::Rocket<rocket::Build> {
    let config = std::env::var("ROCKET_CONFIG")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet.toml").into());
    let figment = rocket::figment::Figment::from(rocket::Config::default())
        .merge(Toml::file(config).nested())
        .merge(Env::prefixed("ROCKET_").ignore(&["CONFIG"]).global());
    rocket::custom(figment)
        .attach(AllowFairing::fairing().require::<Ops>())
        .mount(
            "/",
            routes![index, ban, unban, block, mode, status, flush, strike, banned],
        )
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `curl --interface from`, by hand: the status of one request.
fn status_from(from: &str, port: u16, method: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    let local: std::net::SocketAddr = (from.parse::<IpAddr>().ok()?, 0).into();
    socket.bind(&local.into()).ok()?;
    let server: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    socket
        .connect_timeout(&server.into(), Duration::from_secs(2))
        .ok()?;
    let mut s: std::net::TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ').nth(1)?.parse().ok()
}

/// Kills a child process when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The demo: Redis, two instances, a ban made on one and enforced by the other.
fn demo() {
    let redis_port = free_port();
    let redis = Running(
        Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &redis_port.to_string()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian: apt-get install redis-server)"),
    );
    let me = std::env::current_exe().expect("this program");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet.toml");
    let start = |port: u16| {
        Running(
            Command::new(&me)
                .env("FLEET_INSTANCE", "1")
                .env("ROCKET_CONFIG", config)
                .env("ROCKET_PORT", port.to_string())
                .env("ROCKET_LOG_LEVEL", "off")
                .env(
                    "ROCKET_ALLOW",
                    format!("{{store={{redis=\"redis://127.0.0.1:{redis_port}/0\"}}}}"),
                )
                .spawn()
                .expect("an instance"),
        )
    };
    let (a, b) = (start(8101), start(8102));
    let ready = Instant::now() + Duration::from_secs(20);
    while status_from("127.0.0.1", 8101, "GET", "/").is_none()
        || status_from("127.0.0.1", 8102, "GET", "/").is_none()
    {
        assert!(Instant::now() < ready, "the instances did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "127.0.0.2 on B before: {:?}",
        status_from("127.0.0.2", 8102, "GET", "/")
    );
    let t = Instant::now();
    println!(
        "ban 127.0.0.2 on A: {:?}",
        status_from("127.0.0.1", 8101, "POST", "/ban/127.0.0.2")
    );
    while status_from("127.0.0.2", 8102, "GET", "/") != Some(403) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "B never refused 127.0.0.2"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "127.0.0.2 on B: 403, {:.1} ms after the ban on A",
        t.elapsed().as_secs_f64() * 1e3
    );
    println!(
        "127.0.0.1 on B: {:?}",
        status_from("127.0.0.1", 8102, "GET", "/")
    );
    drop((a, b, redis));
}

fn main() {
    if std::env::var_os("FLEET_INSTANCE").is_some() {
        let _ = rocket::execute(instance().launch());
    } else {
        demo();
    }
}
