//! Automatic-ban events counted for the whole fleet: each instance queues its events and a
//! thread of its own sends them in batches (no Redis round trip on the request path). In
//! Redis each (rule, client) is a sorted set of event times, trimmed to the window and to
//! `max + 1` entries, expiring by itself; one script call adds a batch and says which
//! clients went over, atomically, so exactly one instance makes each ban.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::Store;

/// Adds a batch of one rule's events. KEYS: none (every key is derived from ARGV[1]).
/// ARGV: key base, window ms, max, ban secs, max ban secs (0: none), member tag, then
/// client, time (Unix ms) pairs. Returns client, ban secs, events seen, for each client
/// that went over (its count is reset then).
const ADD: &str = r#"
local base, window, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ban, maxban, tag = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local out = {}
for i = 7, #ARGV - 1, 2 do
  local client, t = ARGV[i], tonumber(ARGV[i + 1])
  local key = base .. ':c:' .. client
  redis.call('ZADD', key, t, tag .. ':' .. i)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', t - window)
  redis.call('ZREMRANGEBYRANK', key, 0, -(max + 2))
  local n = redis.call('ZCOUNT', key, '(' .. (t - window), t)
  if n > max then
    redis.call('DEL', key)
    local secs = ban
    if maxban > 0 then
      local lk = base .. ':l:' .. client
      local last = tonumber(redis.call('GET', lk))
      if last then secs = math.min(last * 2, maxban) end
      redis.call('SET', lk, secs, 'PX', (secs + maxban) * 1000)
    end
    out[#out + 1] = client
    out[#out + 1] = secs
    out[#out + 1] = n
  else
    redis.call('PEXPIRE', key, window)
  end
end
return out
"#;

/// At most this many events per script call, so that one call never holds Redis long.
const CHUNK: usize = 2_000;

/// Events waiting beyond this are counted on this instance instead (Redis too slow).
const MAX_PENDING: usize = 200_000;

/// How long Redis gets for a connect or a reply.
const TIMEOUT: Duration = Duration::from_secs(2);

/// After a failed connect, batches are counted locally for this long before trying again.
const RETRY: Duration = Duration::from_secs(1);

/// One rule as Redis counts it.
#[derive(Debug, Clone)]
pub(crate) struct CountRule {
    /// `<prefix>:ab:<name>`.
    pub key: String,
    pub window_ms: u64,
    pub max: u64,
    pub ban_secs: u64,
    /// 0: no escalation.
    pub max_ban_secs: u64,
}

/// One event waiting to be sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub rule: usize,
    pub client: IpNet,
    /// Unix ms (Redis orders every instance's events by it).
    pub at_ms: u64,
    /// This instance's monotonic ms (to count it here if Redis cannot).
    pub mono_ms: u64,
}

/// A client that went over its limit on the fleet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Over {
    pub rule: usize,
    pub client: IpNet,
    pub secs: u64,
    pub events: u64,
}

/// What a batch came to: clients to ban, or the events Redis could not take (to be counted
/// on this instance).
pub(crate) enum Outcome {
    Counted(Vec<Over>),
    NotSent(Vec<Event>),
}

#[derive(Default)]
struct Queue {
    events: Vec<Event>,
    /// Clients whose counts to drop (a lifted ban), by rule key.
    resets: Vec<IpNet>,
}

/// The queue of events and the thread that sends them.
pub(crate) struct Counter {
    queue: Mutex<Queue>,
    wake: Condvar,
    stopped: AtomicBool,
}

impl Counter {
    /// Starts the thread; `done` gets each batch's outcome (on that thread). It ends once
    /// `owner` is gone or [`stop`](Self::stop) is called.
    pub fn start<T: Send + Sync + 'static>(
        store: &Arc<Store>,
        rules: Vec<CountRule>,
        owner: Weak<T>,
        done: impl Fn(&T, Outcome) + Send + 'static,
    ) -> std::io::Result<Arc<Counter>> {
        let counter = Arc::new(Counter {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            stopped: AtomicBool::new(false),
        });
        let (c, config, tag) = (
            counter.clone(),
            store.config.clone(),
            store.instance.clone(),
        );
        std::thread::Builder::new()
            .name("rocket-allow-auto-ban".into())
            .spawn(move || run(&c, &config, &tag, &rules, &owner, &done))?;
        Ok(counter)
    }

    /// Queues one event; `false` when the queue is full (count it locally instead).
    pub fn push(&self, event: Event) -> bool {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.events.len() >= MAX_PENDING {
            return false;
        }
        q.events.push(event);
        // Only the first event of a batch wakes the thread: the rest join it.
        if q.events.len() == 1 {
            self.wake.notify_one();
        }
        true
    }

    /// Drops the fleet's counts (and escalation) of `client` for every rule.
    pub fn reset(&self, client: IpNet) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.resets.push(client);
        self.wake.notify_one();
    }

    /// Ends the thread.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.wake.notify_all();
    }
}

fn run<T>(
    counter: &Counter,
    config: &crate::config::StoreConfig,
    tag: &str,
    rules: &[CountRule],
    owner: &Weak<T>,
    done: &impl Fn(&T, Outcome),
) {
    let Ok(client) = config.client() else {
        return;
    };
    let mut con: Option<(redis::Connection, String)> = None;
    let mut failed_at: Option<Instant> = None;
    let mut batch_no: u64 = 0;
    loop {
        let (events, resets) = {
            let q = counter.queue.lock().unwrap_or_else(|e| e.into_inner());
            let mut q = counter
                .wake
                .wait_timeout_while(q, Duration::from_secs(1), |q| {
                    q.events.is_empty()
                        && q.resets.is_empty()
                        && !counter.stopped.load(Ordering::Relaxed)
                })
                .map(|(q, _)| q)
                .unwrap_or_else(|e| e.into_inner().0);
            (std::mem::take(&mut q.events), std::mem::take(&mut q.resets))
        };
        if counter.stopped.load(Ordering::Relaxed) {
            return;
        }
        let Some(owner) = owner.upgrade() else {
            return;
        };
        if events.is_empty() && resets.is_empty() {
            continue;
        }
        if con.is_none() && failed_at.is_none_or(|at| at.elapsed() >= RETRY) {
            match connect(&client) {
                Ok(c) => {
                    con = Some(c);
                    failed_at = None;
                }
                Err(e) => {
                    log::warn!(target: "rocket_allow",
                        "rocket-allow: auto_ban: fleet counts unreachable ({e}); counting on this instance");
                    failed_at = Some(Instant::now());
                }
            }
        }
        let Some((c, sha)) = &mut con else {
            done(&owner, Outcome::NotSent(events));
            continue;
        };
        batch_no += 1;
        let sent = send(
            c,
            sha,
            rules,
            &format!("{tag}:{batch_no}"),
            &events,
            &resets,
        );
        match sent {
            Ok(over) => done(&owner, Outcome::Counted(over)),
            Err(e) => {
                log::warn!(target: "rocket_allow",
                    "rocket-allow: auto_ban: fleet counts failed ({e}); counting on this instance");
                con = None;
                failed_at = Some(Instant::now());
                done(&owner, Outcome::NotSent(events));
            }
        }
    }
}

fn connect(client: &redis::Client) -> Result<(redis::Connection, String), String> {
    let mut c = client
        .get_connection_with_timeout(TIMEOUT)
        .map_err(|e| format!("{:?}", e.kind()))?;
    let setup = |c: &mut redis::Connection| -> redis::RedisResult<String> {
        c.set_read_timeout(Some(TIMEOUT))?;
        c.set_write_timeout(Some(TIMEOUT))?;
        redis::cmd("SCRIPT").arg("LOAD").arg(ADD).query(c)
    };
    let sha = setup(&mut c).map_err(|e| format!("{:?}", e.kind()))?;
    Ok((c, sha))
}

/// Sends one batch (resets first, then each rule's events in chunks) in one pipeline.
fn send(
    con: &mut redis::Connection,
    sha: &str,
    rules: &[CountRule],
    tag: &str,
    events: &[Event],
    resets: &[IpNet],
) -> Result<Vec<Over>, String> {
    let mut pipe = redis::pipe();
    for client in resets {
        for rule in rules {
            pipe.cmd("DEL")
                .arg(format!("{}:c:{client}", rule.key))
                .arg(format!("{}:l:{client}", rule.key))
                .ignore();
        }
    }
    let mut calls = Vec::new();
    for (r, rule) in rules.iter().enumerate() {
        let mine: Vec<&Event> = events.iter().filter(|e| e.rule == r).collect();
        for (n, chunk) in mine.chunks(CHUNK).enumerate() {
            let call = pipe
                .cmd("EVALSHA")
                .arg(sha)
                .arg(0)
                .arg(&rule.key)
                .arg(rule.window_ms)
                .arg(rule.max)
                .arg(rule.ban_secs)
                .arg(rule.max_ban_secs)
                .arg(format!("{tag}:{r}:{n}"));
            for e in chunk {
                call.arg(e.client.to_string()).arg(e.at_ms);
            }
            calls.push(r);
        }
    }
    let replies: Vec<Vec<redis::Value>> = pipe.query(con).map_err(|e| format!("{:?}", e.kind()))?;
    let mut out = Vec::new();
    for (rule, reply) in calls.into_iter().zip(replies) {
        for triple in reply.chunks(3) {
            let [client, secs, n] = triple else { continue };
            // What Redis returns is checked like any record: a bad one is skipped.
            let client: Option<IpNet> = redis::from_redis_value::<String>(client.clone())
                .ok()
                .and_then(|c| c.parse().ok());
            let secs = redis::from_redis_value::<u64>(secs.clone()).ok();
            let n = redis::from_redis_value::<u64>(n.clone()).ok();
            if let (Some(client), Some(secs), Some(events)) = (client, secs, n) {
                out.push(Over {
                    rule,
                    client,
                    secs: secs.clamp(1, 31_536_000),
                    events,
                });
            }
        }
    }
    Ok(out)
}
