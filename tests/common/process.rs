//! Processes the tests start (redis-server, app instances, nginx): a free loopback port to
//! give them, and a handle that stops a process by its PID when dropped.

use std::net::TcpListener;
use std::process::Child;

/// A port nothing listens on right now (another process may still take it before it is
/// used: callers that start a server on it should be ready to retry).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed (by PID) and reaped when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
