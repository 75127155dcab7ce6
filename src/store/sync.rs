//! The thread that keeps this instance and Redis in step: connect, resynchronise in full,
//! then apply published changes and write local ones as they come, until the connection
//! fails (then again, with backoff) or the app is gone.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::{Commands, Connection};

use super::record::{decode, decode_message, Change, Kind, Record};
use super::{now_ms, Local, Store, STORE_ERRORS, STORE_SYNC_AGE, STORE_UP};

/// Writes a record unless Redis holds a newer one, notes when it may go, appends it to the
/// change log (the last 100,000 changes, so that an instance that was away replays what it
/// missed instead of reading everything) and publishes it with its log id.
/// KEYS: the hash, the expiry set, the channel, the log. ARGV: field, value, made, drop-at
/// (or ""), message (or "": neither logged nor published, when refilling an emptied Redis),
/// the writer's clock now.
const WRITE: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  local m = ok and type(old) == 'table' and tonumber(old['m'])
  -- Newer wins; a record made more than a day ahead of the writer's clock (ARGV[6]) is
  -- garbage (or a clock far off), and must not pin the field forever.
  if m and m > tonumber(ARGV[3]) and m <= tonumber(ARGV[6]) + 86400000 then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local member = KEYS[1] .. '|' .. ARGV[1]
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[2], member)
else
  redis.call('ZADD', KEYS[2], ARGV[4], member)
end
if ARGV[5] ~= '' then
  local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', 'c', ARGV[5])
  redis.call('PUBLISH', KEYS[3], id .. ' ' .. ARGV[5])
end
return 1
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
    prefix: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
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
                metrics::counter!(STORE_ERRORS).increment(1);
                if store.connected.swap(false, Ordering::Relaxed) || e != last_error {
                    log::warn!(target: "rocket_allow",
                        "rocket-allow: fleet store `{url}`: {e}; enforcing the last state, retrying");
                }
                last_error = e;
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
/// connection of its own (the reader waits on its subscription). While Redis is away the
/// changes stay queued; the reader writes them first after it reconnects.
pub(super) fn write_loop(store: &Arc<Store>, local: &Weak<dyn Local>) {
    let keys = Keys::new(&store.config.prefix);
    let Ok(client) = store.config.client() else {
        return;
    };
    let mut con: Option<(Connection, String)> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        {
            let q = store.queue.lock().unwrap_or_else(|e| e.into_inner());
            let wait = if con.is_some() {
                Duration::from_secs(1)
            } else {
                backoff
            };
            let _ = store.wake.wait_timeout_while(q, wait, |q| {
                q.is_empty() && !store.stopped.load(Ordering::Relaxed)
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
                Err(_) => {
                    // The reader reports the outage; this one only waits to try again.
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        if let Some((c, sha)) = &mut con {
            if flush(store, c, sha, &keys, l.as_ref()).is_err() {
                con = None;
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
    match e.detail() {
        Some(d) => format!("{:?}: {d}", e.kind()),
        None => format!("{:?}: {}", e.kind(), e.category()),
    }
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
) -> Result<(), String> {
    let mut con = client.get_connection_with_timeout(TIMEOUT).map_err(err)?;
    con.set_read_timeout(Some(TIMEOUT)).map_err(err)?;
    con.set_write_timeout(Some(TIMEOUT)).map_err(err)?;
    let mut sub = client.get_connection_with_timeout(TIMEOUT).map_err(err)?;
    sub.set_write_timeout(Some(TIMEOUT)).map_err(err)?;
    let mut ps = sub.as_pubsub();
    // Subscribed before the full read: a change made during it arrives afterwards, and
    // changes arrive in the order Redis made them, so replaying them converges.
    ps.subscribe(&keys.channel).map_err(err)?;
    ps.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(err)?;
    let write: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(WRITE)
        .query(&mut con)
        .map_err(err)?;
    let prune: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(PRUNE)
        .query(&mut con)
        .map_err(err)?;
    let Some(l) = local.upgrade() else {
        return Ok(());
    };
    // A Redis without our epoch (restarted empty, or a new one) is filled from this
    // instance's state, with records older than any real change.
    let now_epoch: Option<String> = con.get(&keys.epoch).map_err(err)?;
    let same_redis = now_epoch.is_some() && now_epoch == *epoch;
    // Only a Redis without an epoch is filled: one with another epoch was filled already by
    // the first instance back, and a lift recorded since must not be undone by this one's
    // older view.
    if now_epoch.is_none() {
        fill(&mut con, &write, keys, l.as_ref())?;
        let fresh = format!("{}-{}", store.instance, now_ms());
        let _: () = redis::cmd("SET")
            .arg(&keys.epoch)
            .arg(&fresh)
            .arg("NX")
            .query(&mut con)
            .map_err(err)?;
    }
    *epoch = con.get(&keys.epoch).map_err(err)?;
    flush(store, &mut con, &write, keys, l.as_ref())?;
    // Back on the same Redis, with every change since the last one applied still in the
    // log: replay those. Otherwise read everything.
    let replayed = match last_id.as_deref() {
        Some(from) if same_redis => replay(&mut con, keys, from, l.as_ref())?,
        _ => None,
    };
    match replayed {
        Some(last) => *last_id = Some(last),
        None => {
            // The log's newest id before the read: later changes arrive as messages. It
            // becomes the replay point only once the read succeeded: after a failed one,
            // the next connection must read everything again.
            let newest = newest_id(&mut con, keys)?;
            super::read::read_all(store, &mut con, keys, l.as_ref())?;
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
                // The id before the record is not trusted (anyone can publish): a reconnect
                // replays from the last id read from the log itself, which re-applies these
                // changes in order, harmlessly.
                let text = payload.split_once(' ').map_or(payload.as_str(), |(_, t)| t);
                match decode_message(text) {
                    Ok((_, record)) => apply(l.as_ref(), record),
                    Err(e) => malformed(&keys.channel, &e),
                }
            }
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(err(e)),
        }
        if beat.elapsed() >= HEARTBEAT {
            let _: String = redis::cmd("PING").query(&mut con).map_err(err)?;
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
                .query(&mut con)
                .map_err(err)?;
            pruned = Instant::now();
        }
    }
}

/// The newest id in the change log, after appending a marker when the log is empty: a
/// replay point is always an entry that exists, so a log trimmed, deleted or replaced
/// since is seen (the entry is gone) and never taken for complete.
fn newest_id(con: &mut Connection, keys: &Keys) -> Result<String, String> {
    let newest: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg(&keys.log)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(con)
        .map_err(err)?;
    match newest.into_iter().next() {
        Some((id, _)) => Ok(id),
        None => redis::cmd("XADD")
            .arg(&keys.log)
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*")
            .arg("sync")
            .arg("1")
            .query(con)
            .map_err(err),
    }
}

/// Applies the changes logged after `from`, in order, if the log still holds `from` itself
/// (so nothing after it was trimmed away, and the log was not deleted or replaced): the
/// newest id applied. `None` when it does not (or the log cannot be read): then everything
/// must be read.
fn replay(
    con: &mut Connection,
    keys: &Keys,
    from: &str,
    local: &dyn Local,
) -> Result<Option<String>, String> {
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
            .query(con)
            .map_err(err)?;
        if page.is_empty() {
            return Ok(Some(last));
        }
        for (id, fields) in page {
            for (name, text) in fields {
                if name != "c" {
                    continue; // a replay marker
                }
                match decode_message(&text) {
                    Ok((_, record)) => apply(local, record),
                    Err(e) => malformed(&format!("{} {id}", keys.log), &e),
                }
            }
            last = id;
        }
    }
}

pub(super) fn malformed(key: &str, why: &str) {
    metrics::counter!(STORE_ERRORS).increment(1);
    // Text from Redis is someone else's: keep the line short and printable.
    let why: String = why
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    log::warn!(target: "rocket_allow", "rocket-allow: fleet store: skipped `{key}`: {why}");
}

/// Whether a failure is the connection's (try again later) rather than Redis refusing
/// what was sent (a key of the wrong type someone else wrote: trying again cannot help).
pub(super) fn connection_failed(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// Writes one change (newer wins); when Redis held a newer record, that one is applied here.
fn write_one(
    con: &mut Connection,
    write: &str,
    keys: &Keys,
    change: &Change,
    publish: bool,
    local: &dyn Local,
) -> redis::RedisResult<()> {
    let hash = keys.hash(change.kind);
    let drop_at = change.drop_at.map(|d| d.to_string()).unwrap_or_default();
    let message = if publish {
        change.message()
    } else {
        String::new()
    };
    let written: i64 = redis::cmd("EVALSHA")
        .arg(write)
        .arg(4)
        .arg(&hash)
        .arg(&keys.expiry)
        .arg(&keys.channel)
        .arg(&keys.log)
        .arg(&change.field)
        .arg(&change.value)
        .arg(change.made)
        .arg(drop_at)
        .arg(message)
        .arg(now_ms())
        .query(con)?;
    if written == 0 {
        let newer: Option<String> = con.hget(&hash, &change.field)?;
        if let Some(newer) = newer {
            match decode(change.kind, &change.field, &newer) {
                Ok(record) => apply(local, record),
                Err(e) => malformed(&format!("{hash} {}", change.field), &e),
            }
        }
    }
    Ok(())
}

/// Writes the queued local changes, oldest first; one that fails for the connection goes
/// back to the front, one Redis refuses is dropped (and logged).
fn flush(
    store: &Store,
    con: &mut Connection,
    write: &str,
    keys: &Keys,
    local: &dyn Local,
) -> Result<(), String> {
    loop {
        // Left at the front while it is written: a full read running meanwhile sees it
        // queued, or (once written) in `written`.
        let next = store
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .front()
            .cloned();
        let Some(change) = next else {
            return Ok(());
        };
        match write_one(con, write, keys, &change, true, local) {
            Ok(()) => {}
            Err(e) if connection_failed(&e) => return Err(err(e)),
            Err(e) => malformed(
                &format!("{} {}", keys.hash(change.kind), change.field),
                &format!("not written: {}", err(e)),
            ),
        }
        if let Some(written) = store
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            written.insert((change.kind, change.field.clone()));
        }
        // The reader and the writer both flush: the other may have taken it off already.
        let mut queue = store.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.front().is_some_and(|c| {
            c.made == change.made && c.field == change.field && c.value == change.value
        }) {
            queue.pop_front();
        }
    }
}

/// Fills an empty Redis with this instance's bans, as records made at time 0 (any real
/// change wins over them), without publishing (the others hold the same state).
fn fill(con: &mut Connection, write: &str, keys: &Keys, local: &dyn Local) -> Result<(), String> {
    let bans = local.bans();
    for chunk in bans.chunks(SCAN) {
        let mut pipe = redis::pipe();
        for (target, expires, reason) in chunk {
            let mut change = Change::ban(*target, *expires, reason.as_deref(), "refill");
            let mut value: serde_json::Value =
                serde_json::from_str(&change.value).unwrap_or_default();
            value["m"] = 0.into();
            change.value = value.to_string();
            change.made = 0;
            pipe.cmd("EVALSHA")
                .arg(write)
                .arg(4)
                .arg(keys.hash(Kind::Bans))
                .arg(&keys.expiry)
                .arg(&keys.channel)
                .arg(&keys.log)
                .arg(&change.field)
                .arg(&change.value)
                .arg(0)
                .arg(change.drop_at.map(|d| d.to_string()).unwrap_or_default())
                .arg("")
                .arg(now_ms())
                .ignore();
        }
        let _: () = pipe.query(con).map_err(err)?;
    }
    if !bans.is_empty() {
        log::warn!(target: "rocket_allow",
            "rocket-allow: the fleet store was empty; filled it with this instance's {} bans",
            bans.len());
    }
    Ok(())
}

/// Applies one record as Redis holds it now.
pub(super) fn apply(local: &dyn Local, record: Record) {
    match record {
        Record::Ban {
            target,
            expires,
            reason,
            ..
        } => {
            if expires > now_ms() {
                local.ban(target, expires, reason.as_deref());
            } else {
                // A ban renewed to end now (a ttl of 0) ends here too.
                local.unban(target);
            }
        }
        Record::Lifted { target, .. } => local.unban(target),
        Record::Set { name, entries, .. } => local.set(&name, &entries),
        Record::Mode {
            policy, enforce, ..
        } => local.mode(&policy, enforce),
    }
}
