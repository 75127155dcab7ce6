//! Automatic-ban events counted for the whole fleet: each instance queues its events and a
//! thread of its own sends them in batches (no Redis round trip on the request path). In
//! Redis each (rule, client) is a sorted set of event times, trimmed to the window and to
//! `max + 1` entries, expiring by itself; an index of the clients (oldest dropped first)
//! keeps at most `max_tracked` of them. One script call adds a batch and says which clients
//! went over, atomically, so exactly one instance makes each ban.
//!
//! Times are Redis's own (`TIME`): each event is sent with its age on this instance's
//! monotonic clock, so instances whose wall clocks disagree still add up. While Redis cannot
//! be reached, or a batch has been on its way too long, events are counted on this
//! instance, and sent to Redis once it is back (so an attack straddling an outage is still
//! counted whole).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::Store;

/// Adds a batch of one rule's events, once: a call sent again with the same tag (its reply
/// was lost) gets the first call's reply and counts nothing. KEYS: none (every key is
/// derived from ARGV[1]).
/// ARGV: key base, window ms, max, ban secs, max ban secs (0: none), the call's tag, enforce
/// (1/0), max tracked, the store's bans hash, the batch's send time on the instance's
/// clock (ms), then client, event time on that clock pairs. Returns the clients tracked,
/// then client, ban secs, events seen for each client that went over (its count is reset,
/// and while its ban lasts its events are not counted: one burst, one ban).
///
/// What other writers left in these keys is garbage to skip, never a reason to fail the
/// batch: a key of the wrong type is dropped, entries dated in the future are dropped, a
/// last ban that is not a positive number is ignored.
const ADD: &str = r#"
local base, window, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ban, maxban, tag = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
-- A call is sent again, with the same tag, when its reply never came: it may have run.
-- Then its reply is given again, and nothing is counted twice.
local done = base .. ':r:' .. tag
local before = redis.pcall('GET', done)
if type(before) == 'string' then
  local ok, out = pcall(cjson.decode, before)
  if ok and type(out) == 'table' then return out end
end
local enforce, cap, bans, sent = ARGV[7] == '1', tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10])
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local idx = base .. ':idx'
local function zadd(key, score, member)
  local r = redis.pcall('ZADD', key, score, member)
  if type(r) == 'table' and r.err then
    redis.call('DEL', key)
    redis.call('ZADD', key, score, member)
  end
end
local function banned(client)
  if redis.call('EXISTS', base .. ':b:' .. client) == 1 then return true end
  local v = redis.pcall('HGET', bans, client)
  if type(v) ~= 'string' then return false end
  local ok, rec = pcall(cjson.decode, v)
  if not ok or type(rec) ~= 'table' or rec.l == true then return false end
  if rec.e == nil or rec.e == cjson.null then return true end
  return type(rec.e) == 'number' and rec.e > now
end
local out = {}
for i = 11, #ARGV - 1, 2 do
  local client = ARGV[i]
  local age = sent - tonumber(ARGV[i + 1])
  if age < 0 then age = 0 end
  local t = now - age
  if t > now - window and not banned(client) then
    local key = base .. ':c:' .. client
    zadd(key, t, tag .. ':' .. i)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    redis.call('ZREMRANGEBYSCORE', key, '(' .. now, '+inf')
    redis.call('ZREMRANGEBYRANK', key, 0, -(max + 2))
    zadd(idx, t, client)
    local n = redis.call('ZCARD', key)
    if n > max then
      redis.call('DEL', key)
      redis.call('ZREM', idx, client)
      local secs = ban
      local lk = base .. ':l:' .. client
      if maxban > 0 then
        local last = redis.pcall('GET', lk)
        last = type(last) == 'string' and tonumber(last) or nil
        if last and last > 0 then secs = math.min(math.max(last * 2, ban), maxban) end
      end
      if enforce then
        if maxban > 0 then redis.call('SET', lk, secs, 'PX', (secs + maxban) * 1000) end
        redis.call('SET', base .. ':b:' .. client, 1, 'PX', secs * 1000)
      end
      out[#out + 1] = client
      out[#out + 1] = secs
      out[#out + 1] = n
    else
      redis.call('PEXPIRE', key, window)
    end
  end
end
redis.call('ZREMRANGEBYSCORE', idx, '-inf', now - window)
local over = redis.call('ZCARD', idx) - cap
if over > 0 then
  local old = redis.call('ZPOPMIN', idx, over)
  for j = 1, #old, 2 do redis.call('DEL', base .. ':c:' .. old[j]) end
end
redis.call('PEXPIRE', idx, window)
table.insert(out, 1, redis.call('ZCARD', idx))
redis.call('SET', done, cjson.encode(out), 'PX', window + 600000)
return out
"#;

/// Drops clients' counts, escalation and ban marks, once per tag (a batch sent again after
/// a lost reply must not drop what its own events added the first time). ARGV: the done
/// key, the rule's key base, then clients.
const RESET: &str = r#"
if not redis.call('SET', ARGV[1], 1, 'NX', 'PX', 600000) then return 0 end
local base = ARGV[2]
for i = 3, #ARGV do
  local c = ARGV[i]
  redis.call('DEL', base .. ':c:' .. c, base .. ':l:' .. c, base .. ':b:' .. c)
  redis.call('ZREM', base .. ':idx', c)
end
return 1
"#;

/// At most this many events per script call, so that one call never holds Redis long.
const CHUNK: usize = 2_000;

/// Events waiting beyond this are counted on this instance instead (Redis too slow).
const MAX_PENDING: usize = 200_000;

/// Events counted on this instance and kept to be sent once Redis is back.
const MAX_HELD: usize = 100_000;

/// How long Redis gets for a connect or a reply.
const TIMEOUT: Duration = Duration::from_secs(2);

/// A batch on its way longer than this: new events are counted on this instance (a Redis
/// that accepts and never answers must not let an attacker far past `max`).
const STUCK_MS: u64 = 250;

/// After a failed connect, events are counted locally for this long before trying again.
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
    pub enforce: bool,
    pub max_tracked: usize,
}

/// One event waiting to be sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub rule: usize,
    pub client: IpNet,
    /// When, on the owner's monotonic clock (ms).
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

/// What a batch came to: clients to ban (and each rule's clients tracked by the fleet), or
/// the events Redis could not take (to be counted on this instance).
pub(crate) enum Outcome {
    Counted {
        over: Vec<Over>,
        tracked: Vec<(usize, u64)>,
    },
    NotSent(Vec<Event>),
}

#[derive(Default)]
struct Queue {
    events: Vec<Event>,
    /// Events counted on this instance, to send once Redis is back.
    held: Vec<Event>,
    /// Clients whose counts to drop (a lifted ban).
    resets: Vec<IpNet>,
    /// A batch whose reply never came, sent again as it was (same tags) before anything
    /// else: Redis may have counted it, and then answers as it did the first time.
    unacked: Option<Unacked>,
}

/// A batch sent and not answered.
struct Unacked {
    no: u64,
    events: Vec<Event>,
    resets: Vec<IpNet>,
}

/// The queue of events and the thread that sends them.
pub(crate) struct Counter {
    queue: Mutex<Queue>,
    wake: Condvar,
    stopped: AtomicBool,
    connected: AtomicBool,
    /// When the batch on its way was sent (owner's clock, ms); 0 when none is.
    sending_since: AtomicU64,
    /// The owner's monotonic clock.
    clock: Instant,
}

impl Counter {
    /// Starts the thread; `done` gets each batch's outcome (on that thread). It ends once
    /// `owner` is gone or [`stop`](Self::stop) is called. `clock` is the zero of the
    /// events' `mono_ms`.
    pub fn start<T: Send + Sync + 'static>(
        store: &Arc<Store>,
        rules: Vec<CountRule>,
        clock: Instant,
        owner: Weak<T>,
        done: impl Fn(&T, Outcome) + Send + 'static,
    ) -> std::io::Result<Arc<Counter>> {
        let counter = Arc::new(Counter {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            stopped: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            sending_since: AtomicU64::new(0),
            clock,
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

    fn now(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Queues one event for the fleet; `false`: count it on this instance now (Redis is
    /// away, slow, or the queue is full) — it is also kept, to be sent once Redis is back.
    pub fn push(&self, event: Event) -> bool {
        let since = self.sending_since.load(Ordering::Relaxed);
        let stuck = since != 0 && self.now().saturating_sub(since) > STUCK_MS;
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if !self.connected.load(Ordering::Relaxed) || stuck || q.events.len() >= MAX_PENDING {
            if q.held.len() < MAX_HELD {
                q.held.push(event);
            }
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
        q.held.retain(|e| e.client != client);
        if let Some(u) = &mut q.unacked {
            u.events.retain(|e| e.client != client);
        }
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
    let bans = format!("{}:bans", config.prefix);
    let mut con: Option<(redis::Connection, String)> = None;
    let mut failed_at: Option<Instant> = None;
    let mut batch_no: u64 = 0;
    loop {
        // Connected eagerly (and again after a failure), not on the first event: until
        // then, events are counted here.
        if con.is_none() && failed_at.is_none_or(|at| at.elapsed() >= RETRY) {
            counter
                .sending_since
                .store(counter.now().max(1), Ordering::Relaxed);
            match connect(&client) {
                Ok(c) => {
                    con = Some(c);
                    failed_at = None;
                    // What was counted here meanwhile goes to the fleet's count too.
                    let mut q = counter.queue.lock().unwrap_or_else(|e| e.into_inner());
                    let held = std::mem::take(&mut q.held);
                    q.events.splice(0..0, held);
                    counter.connected.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    if failed_at.is_none() {
                        log::warn!(target: "rocket_allow",
                            "rocket-allow: auto_ban: fleet counts unreachable ({e}); counting on this instance");
                    }
                    failed_at = Some(Instant::now());
                }
            }
            counter.sending_since.store(0, Ordering::Relaxed);
        }
        let (events, resets, again) = {
            let q = counter.queue.lock().unwrap_or_else(|e| e.into_inner());
            let wait = if con.is_some() {
                Duration::from_secs(1)
            } else {
                RETRY
            };
            let mut q = counter
                .wake
                .wait_timeout_while(q, wait, |q| {
                    ((q.events.is_empty() && q.resets.is_empty() && q.unacked.is_none())
                        || con.is_none())
                        && !counter.stopped.load(Ordering::Relaxed)
                })
                .map(|(q, _)| q)
                .unwrap_or_else(|e| e.into_inner().0);
            if con.is_none() {
                (Vec::new(), Vec::new(), None)
            } else if let Some(u) = q.unacked.take() {
                (u.events, u.resets, Some(u.no))
            } else {
                (
                    std::mem::take(&mut q.events),
                    std::mem::take(&mut q.resets),
                    None,
                )
            }
        };
        if counter.stopped.load(Ordering::Relaxed) {
            return;
        }
        let Some(owner) = owner.upgrade() else {
            return;
        };
        let Some((c, sha)) = &mut con else {
            continue;
        };
        if events.is_empty() && resets.is_empty() {
            continue;
        }
        let no = match again {
            Some(no) => no,
            None => {
                batch_no += 1;
                batch_no
            }
        };
        let sent_at = counter.now();
        counter
            .sending_since
            .store(sent_at.max(1), Ordering::Relaxed);
        let batch = Batch {
            sha,
            rules,
            bans: &bans,
            tag: &format!("{tag}:{no}"),
            sent_at,
        };
        let sent = batch.send(c, &events, &resets);
        counter.sending_since.store(0, Ordering::Relaxed);
        match sent {
            Ok((over, tracked)) => done(&owner, Outcome::Counted { over, tracked }),
            Err(e) => {
                log::warn!(target: "rocket_allow",
                    "rocket-allow: auto_ban: fleet counts failed ({e}); counting on this instance");
                con = None;
                counter.connected.store(false, Ordering::Relaxed);
                failed_at = Some(Instant::now());
                // Sent again as it was once Redis answers (it may have run: a reply lost
                // is not a command that did not run). Counted here meanwhile.
                counter
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .unacked = Some(Unacked {
                    no,
                    events: events.clone(),
                    resets,
                });
                if again.is_none() {
                    done(&owner, Outcome::NotSent(events));
                }
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

/// One batch on its way.
struct Batch<'a> {
    sha: &'a str,
    rules: &'a [CountRule],
    bans: &'a str,
    tag: &'a str,
    /// When it was sent, on the owner's clock (ms): the events' ages are taken from it.
    sent_at: u64,
}

type Sent = (Vec<Over>, Vec<(usize, u64)>);

impl Batch<'_> {
    /// Sends resets first, then each rule's events in chunks, in one pipeline.
    fn send(
        &self,
        con: &mut redis::Connection,
        events: &[Event],
        resets: &[IpNet],
    ) -> Result<Sent, String> {
        let mut pipe = redis::pipe();
        if !resets.is_empty() {
            for rule in self.rules {
                let call = pipe
                    .cmd("EVAL")
                    .arg(RESET)
                    .arg(0)
                    .arg(format!("{}:reset:{}", rule.key, self.tag))
                    .arg(&rule.key);
                for client in resets {
                    call.arg(client.to_string());
                }
                call.ignore();
            }
        }
        let mut calls = Vec::new();
        for (r, rule) in self.rules.iter().enumerate() {
            let mine: Vec<&Event> = events.iter().filter(|e| e.rule == r).collect();
            for (n, chunk) in mine.chunks(CHUNK).enumerate() {
                let call = pipe
                    .cmd("EVALSHA")
                    .arg(self.sha)
                    .arg(0)
                    .arg(&rule.key)
                    .arg(rule.window_ms)
                    .arg(rule.max)
                    .arg(rule.ban_secs)
                    .arg(rule.max_ban_secs)
                    .arg(format!("{}:{r}:{n}", self.tag))
                    .arg(if rule.enforce { "1" } else { "0" })
                    .arg(rule.max_tracked)
                    .arg(self.bans)
                    .arg(self.sent_at);
                for e in chunk {
                    call.arg(e.client.to_string()).arg(e.mono_ms);
                }
                calls.push(r);
            }
        }
        let replies: Vec<Vec<redis::Value>> =
            pipe.query(con).map_err(|e| format!("{:?}", e.kind()))?;
        let mut over = Vec::new();
        let mut tracked = Vec::new();
        for (rule, reply) in calls.into_iter().zip(replies) {
            let Some((count, rest)) = reply.split_first() else {
                continue;
            };
            if let Ok(n) = redis::from_redis_value::<i64>(count.clone()) {
                tracked.push((rule, u64::try_from(n).unwrap_or(0)));
            }
            for triple in rest.chunks(3) {
                let [client, secs, n] = triple else { continue };
                // What Redis returns is checked like any record: a bad one is skipped.
                let client: Option<IpNet> = redis::from_redis_value::<String>(client.clone())
                    .ok()
                    .and_then(|c| c.parse().ok());
                let secs = redis::from_redis_value::<i64>(secs.clone())
                    .ok()
                    .and_then(|s| u64::try_from(s).ok())
                    .filter(|&s| s > 0);
                let n = redis::from_redis_value::<i64>(n.clone())
                    .ok()
                    .and_then(|n| u64::try_from(n).ok());
                if let (Some(client), Some(secs), Some(events)) = (client, secs, n) {
                    let rule_secs = self.rules[rule].max_ban_secs.max(self.rules[rule].ban_secs);
                    over.push(Over {
                        rule,
                        client,
                        secs: secs.min(rule_secs),
                        events,
                    });
                }
            }
        }
        Ok((over, tracked))
    }
}
