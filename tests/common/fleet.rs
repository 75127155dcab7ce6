//! Several app instances (separate processes: `examples/fleet.rs`) sharing a real Redis
//! that each test starts on a free loopback port and stops by PID.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{free_port, Proc};
use super::redis::Redis;

/// One test at a time: each starts several processes, and a port freed by a Redis killed
/// mid-test must not be handed to another test's process before it restarts.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The example binary (cargo builds examples for `cargo test`); `FLEET_BINARY` names
/// another build (an older commit's, to watch a test fail against it).
pub fn fleet_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FLEET_BINARY") {
        return path.into();
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join("examples").join("fleet")
}

/// One instance of the app, in its own process.
pub struct Instance {
    pub port: u16,
    pub proc: Proc,
}

impl Instance {
    pub fn start(dir: &Path, redis_url: &str, extra: &str) -> Instance {
        Instance::start_with(dir, redis_url, "", extra)
    }

    /// [`start`](Self::start) with `top` keys put in `[default.allow]`.
    pub fn start_with(dir: &Path, redis_url: &str, top: &str, extra: &str) -> Instance {
        Instance::start_via(&[], dir, redis_url, top, extra)
    }

    /// [`start_with`](Self::start_with), the binary run by the command `via` (`taskset`).
    pub fn start_via(
        via: &[&str],
        dir: &Path,
        redis_url: &str,
        top: &str,
        extra: &str,
    ) -> Instance {
        let port = free_port();
        let config = dir.join(format!("fleet-{port}.toml"));
        let base =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet.toml"))
                .unwrap()
                .replacen("[default.allow]\n", &format!("[default.allow]\n{top}\n"), 1);
        std::fs::write(
            &config,
            format!("{base}\n[default.allow.store]\nredis = \"{redis_url}\"\n{extra}\n"),
        )
        .unwrap();
        // What it logs, for the tests that read it.
        let out = std::fs::File::create(dir.join(format!("fleet-{port}.err"))).unwrap();
        let mut command = match via {
            [] => Command::new(fleet_binary()),
            [program, args @ ..] => {
                let mut c = Command::new(program);
                c.args(args).arg(fleet_binary());
                c
            }
        };
        let child = command
            .env("FLEET_INSTANCE", "1")
            .env("ROCKET_CONFIG", &config)
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_LOG_LEVEL", "normal")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("the fleet example is built");
        let mut i = Instance {
            port,
            proc: Proc(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while i.status("127.0.0.1", "GET", "/").is_none() {
            // A port handed out by free_port can be taken by another process before the
            // instance binds it: then the instance exits, and another port is tried.
            if let Ok(Some(exit)) = i.proc.0.try_wait() {
                let log = std::fs::read_to_string(dir.join(format!("fleet-{port}.err")))
                    .unwrap_or_default();
                assert!(
                    log.contains("Address already in use") || log.contains("in use"),
                    "an instance exited ({exit}):\n{log}"
                );
                return Instance::start_via(via, dir, redis_url, top, extra);
            }
            assert!(Instant::now() < deadline, "an instance did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        i
    }

    /// The status of one request from `from` (a 127.0.0.0/8 address).
    pub fn status(&self, from: &str, method: &str, path: &str) -> Option<u16> {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        super::http::send_from(self.port, from, request.as_bytes()).map(|r| r.status)
    }

    /// The status of `GET path` for `client`, through the proxy at 127.0.0.1.
    pub fn via(&self, path: &str, client: &str) -> u16 {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n"
        );
        super::http::send_from(self.port, "127.0.0.1", request.as_bytes())
            .expect("an answer")
            .status
    }

    pub fn get(&self, from: &str) -> u16 {
        self.status(from, "GET", "/").expect("an answer")
    }

    /// The body of `method path` from 127.0.0.1 (the operator routes), trimmed.
    pub fn answer(&self, method: &str, path: &str) -> String {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        super::http::send_from(self.port, "127.0.0.1", request.as_bytes())
            .map(|r| r.body.trim().to_string())
            .unwrap_or_default()
    }

    /// `GET /status`: the instance's `store_status()`, as `Debug`.
    pub fn store_status(&self) -> String {
        self.answer("GET", "/status")
    }

    pub fn ops(&self, path: &str) {
        assert_eq!(self.status("127.0.0.1", "POST", path), Some(200), "{path}");
    }
}

/// Waits (15 s at most) until every instance answers `from` with `want`.
pub fn until_all(instances: &[&Instance], from: &str, want: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !instances.iter().all(|i| i.get(from) == want) {
        assert!(
            Instant::now() < deadline,
            "{what}: not {want} everywhere in time"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (15 s at most) until `path` holds a line containing `want`.
pub fn until_line(path: &Path, want: &str) {
    super::until(15, &format!("a line with `{want}`"), || {
        std::fs::read_to_string(path).is_ok_and(|t| t.contains(want))
    });
}

/// A ban record as another instance writes it, made now.
pub fn record(lifted: bool) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    if lifted {
        format!(r#"{{"l":true,"m":{now},"o":"elsewhere"}}"#)
    } else {
        format!(r#"{{"e":null,"r":null,"m":{now},"o":"elsewhere"}}"#)
    }
}

/// Makes every instance lose its connections and its replay point: the next sync is a
/// full read.
pub fn force_full_read(redis: &Redis) {
    redis.cmd(&["DEL", "rocket-allow:log"]);
    redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    redis.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
}

/// `[allow.bans] file` in the directory `dir`.
pub fn bans_file(dir: &Path) -> String {
    format!(
        "[default.allow.bans]\nfile = \"{}\"",
        dir.join("bans.txt").display()
    )
}

/// Waits until Redis holds a ban record for `field` whose JSON contains `want`.
pub fn until_record(redis: &Redis, field: &str, want: &str) {
    super::until(15, &format!("`{field}` recorded with `{want}`"), || {
        redis
            .cmd(&[
                "EVAL",
                "return string.find(redis.call('HGET', KEYS[1], ARGV[1]) or '', ARGV[2], 1, true) and 1 or 0",
                "1",
                "rocket-allow:bans",
                field,
                want,
            ])
            .as_deref()
            == Some(":1")
    });
}
