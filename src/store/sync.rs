//! The thread that keeps this instance and Redis in step: connect, resynchronise in full,
//! then apply published changes and write local ones as they come, until the connection
//! fails (then again, with backoff) or the app is gone.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::{Commands, Connection};

use super::record::{decode, decode_message, decode_reference, Change, Kind, Record};
use super::{now_ms, Local, Store, STORE_ERRORS, STORE_SYNC_AGE, STORE_UP};

/// Writes a record if it is newer than the one Redis holds (versions compared as time,
/// instance, sequence: a record sent again, after a reply that never came, is the same
/// version and changes nothing), notes when it may go, appends it to the change log (the
/// last 100,000 changes, so that an instance that was away replays what it missed instead
/// of reading everything) and publishes it with its log id. Returns the log id, or 0 when
/// Redis held the same or a newer record.
/// KEYS: the hash, the expiry set, the channel, the log. ARGV: field, value, made,
/// instance, sequence, drop-at (or ""), message, the writer's clock now, the log entry
/// (which record changed: a replay reads the record itself).
const WRITE: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  local m = ok and type(old) == 'table' and tonumber(old['m'])
  -- A record made more than a day ahead of the writer's clock (ARGV[8]) is garbage (or a
  -- clock far off), and must not pin the field forever.
  if m and m <= tonumber(ARGV[8]) + 86400000 then
    local nm, ni, ns = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
    local oi, os = tonumber(old['i']) or 0, tonumber(old['s']) or 0
    if m > nm or (m == nm and (oi > ni or (oi == ni and os >= ns))) then
      return 0
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local member = KEYS[1] .. '|' .. ARGV[1]
if ARGV[6] == '' then
  redis.call('ZREM', KEYS[2], member)
else
  redis.call('ZADD', KEYS[2], ARGV[6], member)
end
local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', 'r', ARGV[9])
redis.call('PUBLISH', KEYS[3], id .. ' ' .. ARGV[7])
return id
"#;

/// Removes records whose time has come (at most 10,000 a call). KEYS: the expiry set.
/// ARGV: now, the prefix of our hashes (nothing else is touched).
const PRUNE: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 10000)
local ours = { [ARGV[2] .. 'bans'] = true, [ARGV[2] .. 'sets'] = true, [ARGV[2] .. 'modes'] = true }
for _, m in ipairs(due) do
  local sep = string.find(m, '|', 1, true)
  if sep and ours[string.sub(m, 1, sep - 1)] then
    -- pcall: a key of the wrong type someone else wrote must not stop the pruning.
    redis.pcall('HDEL', string.sub(m, 1, sep - 1), string.sub(m, sep + 1))
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due
"#;

/// How long a connect, a command or a read may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How often a connected instance checks Redis (and counts it as a good sync).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often expired records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(2);
/// Fields read per HSCAN.
pub(super) const SCAN: usize = 10_000;

pub(super) struct Keys {
    epoch: String,
    expiry: String,
    channel: String,
    log: String,
    pub prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            epoch: format!("{prefix}:epoch"),
            expiry: format!("{prefix}:expiry"),
            channel: format!("{prefix}:changes"),
            log: format!("{prefix}:log"),
            prefix: format!("{prefix}:"),
        }
    }

    pub(super) fn hash(&self, kind: Kind) -> String {
        format!("{}{}", self.prefix, kind.name())
    }
}

/// The thread's body.
pub(super) fn run(store: &Arc<Store>, local: &Weak<dyn Local>) {
    let keys = Keys::new(&store.config.prefix);
    let url = store.config.redacted_url();
    let client = match store.config.client() {
        Ok(c) => c,
        Err((key, message)) => {
            // Checked at ignite, so only a surprise (a CA file gone since) lands here.
            log::error!(target: "rocket_allow", "allow.{key}: {message} (`{url}`)");
            return;
        }
    };
    let mut epoch: Option<String> = None;
    // The last change applied, by its log id: where a reconnect replays from.
    let mut last_id: Option<String> = None;
    let mut backoff = Duration::from_millis(100);
    let mut last_error = String::new();
    loop {
        if store.stopped.load(Ordering::Relaxed) || local.strong_count() == 0 {
            return;
        }
        match session(
            store,
            local,
            &client,
            &keys,
            &mut epoch,
            &mut last_id,
            &mut backoff,
        ) {
            Ok(()) => return,
            Err(e) => {
                count_error(&e);
                if store.connected.swap(false, Ordering::Relaxed) || e.text != last_error {
                    log::warn!(target: "rocket_allow",
                        "rocket-allow: fleet store `{url}`: {}; enforcing the last state, retrying", e.text);
                }
                if e.kind != "connection" {
                    store.set_error(Some(e.text.clone()));
                }
                last_error = e.text;
                metrics::gauge!(STORE_UP).set(0.0);
                age_gauge(store);
                // Sleep, but wake at once for a stop.
                let q = store.queue.lock().unwrap_or_else(|e| e.into_inner());
                let _ = store.wake.wait_timeout(q, backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The writer thread's body: writes local changes the moment they are queued, on a
/// connection of its own (the reader waits on its subscription). While Redis is away, or
/// refuses them (out of memory, no permission, a replica), the changes stay queued and are
/// tried again with backoff; the reader also writes them first after it reconnects.
pub(super) fn write_loop(store: &Arc<Store>, local: &Weak<dyn Local>) {
    let keys = Keys::new(&store.config.prefix);
    let Ok(client) = store.config.client() else {
        return;
    };
    let mut con: Option<(Connection, String)> = None;
    let mut backoff = Duration::from_millis(100);
    let mut refused = false;
    loop {
        {
            let q = store.queue.lock().unwrap_or_else(|e| e.into_inner());
            let wait = if con.is_some() && !refused {
                Duration::from_secs(1)
            } else {
                backoff
            };
            let _ = store.wake.wait_timeout_while(q, wait, |q| {
                (q.is_empty() || refused) && !store.stopped.load(Ordering::Relaxed)
            });
        }
        if store.stopped.load(Ordering::Relaxed) {
            return;
        }
        let Some(l) = local.upgrade() else {
            return;
        };
        if store
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            refused = false;
            continue;
        }
        if con.is_none() {
            let connected = client
                .get_connection_with_timeout(TIMEOUT)
                .and_then(|mut c| {
                    c.set_read_timeout(Some(TIMEOUT))?;
                    c.set_write_timeout(Some(TIMEOUT))?;
                    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(WRITE).query(&mut c)?;
                    Ok((c, sha))
                });
            match connected {
                Ok(c) => {
                    con = Some(c);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    // The reader reports an outage; a refusal (no permission to load the
                    // script) shows in the status.
                    if !connection_failed(&e) {
                        store.set_error(Some(err(e)));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        if let Some((c, sha)) = &mut con {
            match flush(store, c, sha, &keys, l.as_ref()) {
                Ok(()) => {
                    refused = false;
                    backoff = Duration::from_millis(100);
                }
                Err(e) if e.kind == "connection" => con = None,
                Err(_) => {
                    // Kept queued; tried again after a pause that grows while it lasts.
                    refused = true;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

fn age_gauge(store: &Store) {
    let last = store.gate.last_sync.load(Ordering::Relaxed);
    if last > 0 {
        metrics::gauge!(STORE_SYNC_AGE).set(now_ms().saturating_sub(last) as f64 / 1000.0);
    }
}

pub(super) fn err(e: redis::RedisError) -> String {
    // The error's text can hold the URL: say what kind of failure it was, and the detail
    // Redis gave, which never holds the password.
    match (e.code(), e.detail()) {
        (Some(code), Some(d)) => format!("{code}: {d}"),
        (None, Some(d)) => format!("{:?}: {d}", e.kind()),
        // A pipeline's error: the text is Redis's own replies, which hold no password.
        (None, None) if e.kind() == redis::ErrorKind::Extension => e.to_string(),
        (_, None) => format!("{:?}: {}", e.kind(), e.category()),
    }
}

/// A failure, with its kind for the metrics and the status: `connection` (reconnect and
/// resynchronise), `oom`, `noperm`, `readonly` or `command` (Redis refused what was sent:
/// the change stays queued).
#[derive(Debug)]
pub(super) struct Failure {
    pub kind: &'static str,
    pub text: String,
}

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Failure {
        let kind = kind_of(&e);
        Failure { kind, text: err(e) }
    }
}

impl From<String> for Failure {
    fn from(text: String) -> Failure {
        Failure {
            kind: "command",
            text,
        }
    }
}

/// What kind of failure a Redis error is.
pub(super) fn kind_of(e: &redis::RedisError) -> &'static str {
    if connection_failed(e) {
        return "connection";
    }
    // Inside a script, Redis passes the command's own error code on.
    let text = format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""));
    if text.starts_with("OOM") || text.contains("OOM command not allowed") {
        "oom"
    } else if text.starts_with("NOPERM") || text.contains("NOPERM") {
        "noperm"
    } else if text.starts_with("READONLY") || text.contains("READONLY") {
        "readonly"
    } else {
        "command"
    }
}

fn count_error(e: &Failure) {
    metrics::counter!(STORE_ERRORS, "kind" => e.kind).increment(1);
}

/// Parses a change-log id (`ms-seq`).
pub(super) fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Whether the change log holds the entry `id`.
fn logged(con: &mut Connection, keys: &Keys, id: (u64, u64)) -> Result<bool, Failure> {
    let id = format!("{}-{}", id.0, id.1);
    let found: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&keys.log)
        .arg(&id)
        .arg(&id)
        .query(con)?;
    Ok(found.first().is_some_and(|(i, _)| *i == id))
}

/// One connection's life: `Ok` when the app is gone, `Err` when the connection failed.
fn session(
    store: &Arc<Store>,
    local: &Weak<dyn Local>,
    client: &redis::Client,
    keys: &Keys,
    epoch: &mut Option<String>,
    last_id: &mut Option<String>,
    backoff: &mut Duration,
) -> Result<(), Failure> {
    let mut con = client.get_connection_with_timeout(TIMEOUT)?;
    con.set_read_timeout(Some(TIMEOUT))?;
    con.set_write_timeout(Some(TIMEOUT))?;
    // Every command and channel the store needs, checked for the configured user before
    // anything else: a missing ACL rule is named, never a silent "in sync".
    super::acl::check(&mut con, keys)?;
    let mut sub = client.get_connection_with_timeout(TIMEOUT)?;
    sub.set_write_timeout(Some(TIMEOUT))?;
    let mut ps = sub.as_pubsub();
    // Subscribed before the full read: a change made during it arrives afterwards, and
    // applying a record is idempotent and newer-wins, so replaying them converges.
    ps.subscribe(&keys.channel)?;
    ps.set_read_timeout(Some(Duration::from_millis(100)))?;
    let write: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(WRITE)
        .query(&mut con)?;
    let prune: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(PRUNE)
        .query(&mut con)?;
    let Some(l) = local.upgrade() else {
        return Ok(());
    };
    // A Redis without our epoch is a new (or emptied) one: the full read below writes back
    // every record this instance holds.
    let now_epoch: Option<String> = con.get(&keys.epoch)?;
    let same_redis = now_epoch.is_some() && now_epoch == *epoch;
    if now_epoch.is_none() {
        let fresh = format!("{}-{}", store.instance, now_ms());
        let _: () = redis::cmd("SET")
            .arg(&keys.epoch)
            .arg(&fresh)
            .arg("NX")
            .query(&mut con)?;
    }
    *epoch = con.get(&keys.epoch)?;
    match flush(store, &mut con, &write, keys, l.as_ref()) {
        Err(e) if e.kind == "connection" => return Err(e),
        // Refused (out of memory...): kept queued for the writer; the read goes on.
        _ => {}
    }
    // Back on the same Redis, with every change since the last one applied still in the
    // log, and the newest change this instance wrote or saw still there (a restore or a
    // failover can lose the last writes, and keep the log's older part): replay those.
    // Otherwise merge everything.
    let seen = *store.seen.lock().unwrap_or_else(|e| e.into_inner());
    let replayed = match last_id.as_deref() {
        Some(from) if same_redis && seen.map_or(Ok(true), |id| logged(&mut con, keys, id))? => {
            replay(store, &mut con, keys, from, l.as_ref())?
        }
        _ => None,
    };
    match replayed {
        Some(last) => *last_id = Some(last),
        None => {
            // The log's newest id before the read: later changes arrive as messages. It
            // becomes the replay point only once the read succeeded: after a failed one,
            // the next connection must read everything again.
            let newest = newest_id(&mut con, keys)?;
            super::read::read_all(store, &mut con, &write, keys, l.as_ref())?;
            store.saw(&newest);
            *last_id = Some(newest);
        }
    }
    drop(l);
    store.gate.last_sync.store(now_ms(), Ordering::Relaxed);
    store.connected.store(true, Ordering::Relaxed);
    metrics::gauge!(STORE_UP).set(1.0);
    age_gauge(store);
    *backoff = Duration::from_millis(100);
    log::info!(target: "rocket_allow", "rocket-allow: fleet store connected and in sync");
    let mut beat = Instant::now();
    let mut pruned = Instant::now();
    loop {
        if store.stopped.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(l) = local.upgrade() else {
            return Ok(());
        };
        match ps.get_message() {
            Ok(msg) => {
                let payload: String = msg.get_payload().unwrap_or_default();
                // The id before the record is not trusted as a replay point (anyone can
                // publish): a reconnect replays from the last id read from the log itself,
                // which re-applies these changes, harmlessly. It only makes a reconnect
                // check that the log still holds it (if not: a full merge, never less).
                let text = match payload.split_once(' ') {
                    Some((id, text)) => {
                        store.saw(id);
                        text
                    }
                    None => payload.as_str(),
                };
                match decode_message(text) {
                    Ok((_, record)) => apply(store, l.as_ref(), record),
                    Err(e) => malformed(&keys.channel, &e),
                }
            }
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e.into()),
        }
        if beat.elapsed() >= HEARTBEAT {
            let _: String = redis::cmd("PING").query(&mut con)?;
            store.gate.last_sync.store(now_ms(), Ordering::Relaxed);
            age_gauge(store);
            beat = Instant::now();
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            let _: i64 = redis::cmd("EVALSHA")
                .arg(&prune)
                .arg(1)
                .arg(&keys.expiry)
                .arg(now_ms())
                .arg(&keys.prefix)
                .query(&mut con)?;
            pruned = Instant::now();
        }
    }
}

/// The newest id in the change log, after appending a marker when the log is empty: a
/// replay point is always an entry that exists, so a log trimmed, deleted or replaced
/// since is seen (the entry is gone) and never taken for complete.
fn newest_id(con: &mut Connection, keys: &Keys) -> Result<String, Failure> {
    let newest: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg(&keys.log)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(con)?;
    match newest.into_iter().next() {
        Some((id, _)) => Ok(id),
        None => Ok(redis::cmd("XADD")
            .arg(&keys.log)
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*")
            .arg("sync")
            .arg("1")
            .query(con)?),
    }
}

/// Applies the changes logged after `from`, in order, if the log still holds `from` itself
/// (so nothing after it was trimmed away, and the log was not deleted or replaced): the
/// newest id applied. `None` when it does not (or the log cannot be read): then everything
/// must be read.
fn replay(
    store: &Store,
    con: &mut Connection,
    keys: &Keys,
    from: &str,
    local: &dyn Local,
) -> Result<Option<String>, Failure> {
    type Entries = Vec<(String, Vec<(String, String)>)>;
    let still: redis::RedisResult<Entries> = redis::cmd("XRANGE")
        .arg(&keys.log)
        .arg(from)
        .arg(from)
        .query(con);
    if !still.is_ok_and(|e| e.first().is_some_and(|(id, _)| id == from)) {
        return Ok(None);
    }
    let mut last = from.to_string();
    loop {
        let page: Entries = redis::cmd("XRANGE")
            .arg(&keys.log)
            .arg(format!("({last}"))
            .arg("+")
            .arg("COUNT")
            .arg(SCAN)
            .query(con)?;
        if page.is_empty() {
            store.saw(&last);
            return Ok(Some(last));
        }
        // Each record named on the page, once, read as Redis holds it now (newer wins, so
        // reading a later state than the entry's is as good).
        let mut named: Vec<(Kind, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (id, fields) in page {
            for (name, text) in fields {
                match name.as_str() {
                    "r" => match decode_reference(&text) {
                        Ok(r) if seen.insert(r.clone()) => named.push(r),
                        Ok(_) => {}
                        Err(e) => malformed(&format!("{} {id}", keys.log), &e),
                    },
                    // An entry of an older version: the record itself.
                    "c" => match decode_message(&text) {
                        Ok((_, record)) => apply(store, local, record),
                        Err(e) => malformed(&format!("{} {id}", keys.log), &e),
                    },
                    _ => {} // a replay marker
                }
            }
            last = id;
        }
        let mut pipe = redis::pipe();
        for (kind, field) in &named {
            pipe.cmd("HGET").arg(keys.hash(*kind)).arg(field);
        }
        let values: Vec<Option<Vec<u8>>> = pipe.query(con)?;
        for ((kind, field), value) in named.into_iter().zip(values) {
            // Gone since (pruned when it expired): nothing to apply.
            let Some(value) = value else { continue };
            let key = format!("{} {field}", keys.hash(kind));
            match std::str::from_utf8(&value) {
                Ok(v) => match decode(kind, &field, v) {
                    Ok(record) => apply(store, local, record),
                    Err(e) => malformed(&key, &e),
                },
                Err(_) => malformed(&key, "not UTF-8"),
            }
        }
    }
}

pub(super) fn malformed(key: &str, why: &str) {
    metrics::counter!(STORE_ERRORS, "kind" => "malformed").increment(1);
    // Text from Redis is someone else's: keep the line short and printable.
    let why: String = why
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    log::warn!(target: "rocket_allow", "rocket-allow: fleet store: skipped `{key}`: {why}");
}

/// Whether a failure is the connection's (try again later) rather than Redis refusing
/// what was sent.
pub(super) fn connection_failed(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// One record's WRITE call.
fn write_cmd(write: &str, keys: &Keys, change: &Change) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(write)
        .arg(4)
        .arg(keys.hash(change.kind))
        .arg(&keys.expiry)
        .arg(&keys.channel)
        .arg(&keys.log)
        .arg(&change.field)
        .arg(&change.value)
        .arg(change.version.ms)
        .arg(change.version.instance)
        .arg(change.version.seq)
        .arg(change.drop_at.map(|d| d.to_string()).unwrap_or_default())
        .arg(change.message())
        .arg(now_ms())
        .arg(change.reference());
    cmd
}

/// Writes one change (newer wins); when Redis held a newer record, that one is applied
/// here. Sent again after a reply that never came, it changes nothing the second time.
fn write_one(
    store: &Store,
    con: &mut Connection,
    write: &str,
    keys: &Keys,
    change: &Change,
    local: &dyn Local,
) -> redis::RedisResult<()> {
    // One command, not a pipeline: its error keeps Redis's code (OOM, NOPERM...).
    let written: redis::Value = write_cmd(write, keys, change).query(con)?;
    match written {
        redis::Value::BulkString(id) => store.saw(&String::from_utf8_lossy(&id)),
        redis::Value::SimpleString(id) => store.saw(&id),
        _ => {
            let hash = keys.hash(change.kind);
            let newer: Option<String> = con.hget(&hash, &change.field)?;
            if let Some(newer) = newer {
                match decode(change.kind, &change.field, &newer) {
                    Ok(record) => apply(store, local, record),
                    Err(e) => malformed(&format!("{hash} {}", change.field), &e),
                }
            }
        }
    }
    Ok(())
}

/// Writes the queued local changes, oldest first. One that fails stays at the front: for
/// the connection, until the next one; refused by Redis (out of memory, no permission, a
/// replica, a key of the wrong type), until Redis takes it, tried again with backoff and
/// shown in the status, the metrics and the log. Never dropped.
fn flush(
    store: &Store,
    con: &mut Connection,
    write: &str,
    keys: &Keys,
    local: &dyn Local,
) -> Result<(), Failure> {
    loop {
        // Left at the front while it is written.
        let next = store
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .front()
            .cloned();
        let Some(change) = next else {
            return Ok(());
        };
        if let Err(e) = write_one(store, con, write, keys, &change, local) {
            let failure = Failure::from(e);
            if failure.kind != "connection" {
                count_error(&failure);
                let mut last = store.last_error.lock().unwrap_or_else(|e| e.into_inner());
                if last.as_deref() != Some(failure.text.as_str()) {
                    log::warn!(target: "rocket_allow",
                        "rocket-allow: fleet store: Redis refused a write ({}); the change stays queued and is tried again",
                        failure.text);
                    *last = Some(failure.text.clone());
                }
            }
            return Err(failure);
        }
        store.set_error(None);
        // The reader and the writer both flush: the other may have taken it off already.
        let mut queue = store.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.front() == Some(&change) {
            queue.pop_front();
        }
    }
}

/// Writes back records this instance holds that Redis lacks or holds older (a full read
/// found them), in pipelined chunks; how many Redis took.
pub(super) fn write_back(
    store: &Store,
    con: &mut Connection,
    write: &str,
    keys: &Keys,
    changes: &[Change],
) -> Result<usize, Failure> {
    let mut written = 0;
    for chunk in changes.chunks(SCAN) {
        let mut pipe = redis::pipe();
        for change in chunk {
            pipe.add_command(write_cmd(write, keys, change));
        }
        let replies: Vec<redis::Value> = pipe.query(con)?;
        for reply in replies {
            if let redis::Value::BulkString(id) = reply {
                store.saw(&String::from_utf8_lossy(&id));
                written += 1;
            }
        }
    }
    Ok(written)
}

/// Applies one record from Redis if it is newer than the one held.
pub(super) fn apply(store: &Store, local: &dyn Local, record: Record) {
    match record {
        Record::Ban(r) => local.merge(r),
        Record::Set {
            name,
            entries,
            version,
        } => {
            let held = Change::set(&name, &entries, version, "");
            if store.take_other(Kind::Sets, &name, held) {
                local.set(&name, &entries);
            }
        }
        Record::Mode {
            policy,
            enforce,
            version,
        } => {
            let held = Change::mode(&policy, enforce, version, "");
            if store.take_other(Kind::Modes, &policy, held) {
                local.mode(&policy, enforce);
            }
        }
    }
}
