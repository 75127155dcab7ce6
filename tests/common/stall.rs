//! A TCP relay in front of a test's Redis that can hold back the answer to one command:
//! a full read caught half way, deterministically, while other connections go on.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

/// The relay's gate: armed, it holds the first answer to a request holding `word`.
#[derive(Default)]
struct Gate {
    /// (armed, holding, released)
    state: Mutex<(bool, bool, bool)>,
    moved: Condvar,
    /// Armed to lose the answer instead: dropped, and the connection closed (a reset after
    /// the command ran).
    lose: AtomicBool,
}

/// A relay on a free loopback port to the Redis at `to`.
pub struct Stall {
    pub port: u16,
    gate: Arc<Gate>,
}

impl Stall {
    /// Relays every connection to `127.0.0.1:to`, holding nothing until [`arm`](Self::arm).
    pub fn start(to: u16, word: &'static str) -> Stall {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let gate = Arc::new(Gate::default());
        let g = gate.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                relay(client, server, word, g.clone());
            }
        });
        Stall { port, gate }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Holds the next answer to a request with the word.
    pub fn arm(&self) {
        self.gate.lose.store(false, Ordering::SeqCst);
        *self.gate.state.lock().unwrap() = (true, false, false);
    }

    /// Loses the next answer to a request with the word: Redis ran the command, the
    /// client never hears of it (its connection is closed instead). [`until_holding`]
    /// (Self::until_holding) waits until it happened.
    pub fn lose(&self) {
        self.gate.lose.store(true, Ordering::SeqCst);
        *self.gate.state.lock().unwrap() = (true, false, false);
    }

    /// Waits (deadline: 15 s) until an answer is held.
    pub fn until_holding(&self) {
        super::until(15, "an answer held", || self.gate.state.lock().unwrap().1);
    }

    /// Lets the held answer go.
    pub fn release(&self) {
        self.gate.state.lock().unwrap().2 = true;
        self.gate.moved.notify_all();
    }
}

fn relay(client: TcpStream, server: TcpStream, word: &'static str, gate: Arc<Gate>) {
    let asked = Arc::new(AtomicBool::new(false));
    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let seen = asked.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n @ 1..) = c_in.read(&mut buf) {
            if String::from_utf8_lossy(&buf[..n]).contains(word) {
                seen.store(true, Ordering::SeqCst);
            }
            if s_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(std::net::Shutdown::Both);
    });
    let (mut s_in, mut c_out) = (server, client);
    thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n @ 1..) = s_in.read(&mut buf) {
            if asked.swap(false, Ordering::SeqCst) {
                let mut state = gate.state.lock().unwrap();
                if state.0 && gate.lose.load(Ordering::SeqCst) {
                    state.0 = false;
                    state.1 = true;
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                    break;
                }
                if state.0 {
                    // This answer is the one held: once.
                    state.0 = false;
                    state.1 = true;
                    while !state.2 {
                        state = gate.moved.wait(state).unwrap();
                    }
                }
            }
            if c_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_out.shutdown(std::net::Shutdown::Both);
    });
}
