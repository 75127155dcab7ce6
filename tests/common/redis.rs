//! A redis-server of a test's own on a free loopback port (`--save ''`), stopped by PID
//! when dropped, and one-line commands to it in RESP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{free_port, Proc};

/// A redis-server of this test's own.
pub struct Redis {
    pub port: u16,
    proc: Option<Proc>,
    /// Where it keeps its snapshot (`dump.rdb`, written by `SAVE` only), if anywhere.
    dir: Option<PathBuf>,
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            proc: None,
            dir: None,
        };
        r.restart();
        r
    }

    /// A redis-server whose snapshot lives in `dir`: written by [`Redis::cmd`]`(&["SAVE"])`
    /// only, and loaded by every [`Redis::restart`].
    pub fn start_in(dir: &Path) -> Redis {
        let mut r = Redis {
            port: free_port(),
            proc: None,
            dir: Some(dir.to_path_buf()),
        };
        r.restart();
        r
    }

    /// Stops it without saving (`SHUTDOWN NOSAVE`): what it held since the last `SAVE` is
    /// lost, as in a crash.
    pub fn crash(&mut self) {
        self.cmd(&["SHUTDOWN", "NOSAVE"]);
        self.proc = None;
    }

    /// A handle on the Redis another handle runs at `port` (for commands from another
    /// thread); dropping it stops nothing.
    pub fn at(port: u16) -> Redis {
        Redis {
            port,
            proc: None,
            dir: None,
        }
    }

    /// (Re)starts it on the same port, empty.
    pub fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &self.port.to_string()]);
        if let Some(dir) = &self.dir {
            command.arg("--dir").arg(dir);
        }
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        self.proc = Some(Proc(child));
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cmd(&["PING"]).as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        self.proc = None;
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// One command in RESP; the first line of the answer.
    pub fn cmd(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).ok()?;
        Some(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()?
                .to_string(),
        )
    }
}
