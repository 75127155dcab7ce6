//! The thread that keeps this instance and Redis in step: connect, resynchronise in full,
//! then apply published changes and write local ones as they come, until the connection
//! fails (then again, with backoff) or the app is gone.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::{Commands, Connection};

use super::apply::apply;
use super::failure::{count_error, malformed, Failure};
use super::keys::{Keys, SCAN, TIMEOUT};
use super::record::{decode, decode_message, decode_reference, Kind};
use super::write::{flush, WRITE};
use super::{now_ms, Local, Store, STORE_SYNC_AGE, STORE_UP};

/// Removes records whose time has come (at most 10,000 a call), by Redis's clock (one
/// instance whose clock runs ahead must not remove the fleet's bans early). KEYS: the
/// expiry set. ARGV: unused, the prefix of our hashes (nothing else is touched).
const PRUNE: &str = r#"
if redis.call('TYPE', KEYS[1])['ok'] ~= 'zset' then return 0 end
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 10000)
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

/// How often a connected instance checks Redis (and counts it as a good sync).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often expired records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(2);

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

fn age_gauge(store: &Store) {
    let last = store.gate.last_sync.load(Ordering::Relaxed);
    if last > 0 {
        metrics::gauge!(STORE_SYNC_AGE).set(now_ms().saturating_sub(last) as f64 / 1000.0);
    }
}

/// How many changes Redis says it took (`<prefix>:seq`); 0 when absent or not a number.
fn count(con: &mut Connection, keys: &Keys) -> Result<u64, Failure> {
    let n: Option<String> = redis::cmd("GET").arg(&keys.seq).query(con)?;
    Ok(n.and_then(|n| n.parse().ok()).unwrap_or(0))
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
    // Back on the same Redis, with every change since the last one applied still in the
    // log, and no change lost (Redis counts at least as many as this instance knew of: a
    // restore or a failover can lose the last writes and keep the log's older part):
    // replay those. Otherwise merge everything. Checked before this instance writes
    // anything there (the writer thread waits for this session to be in sync): a write
    // would count again what the lost ones counted.
    let complete = count(&mut con, keys)? >= store.trusted.load(Ordering::Relaxed);
    let replayed = match last_id.as_deref() {
        Some(from) if same_redis && complete => replay(store, &mut con, keys, from, l.as_ref())?,
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
            // What Redis counts now is the reference from here (it may have counted less
            // than before, if it lost changes; they were just written back).
            store
                .trusted
                .store(count(&mut con, keys)?, Ordering::Relaxed);
            *last_id = Some(newest);
        }
    }
    match flush(store, &mut con, &write, keys, l.as_ref()) {
        Err(e) if e.kind == "connection" => return Err(e),
        // Refused (out of memory...): kept queued for the writer, tried again.
        _ => {}
    }
    drop(l);
    store.gate.last_sync.store(now_ms(), Ordering::Relaxed);
    store.connected.store(true, Ordering::Relaxed);
    // What refused the last connection (a missing permission since granted) is over; a
    // write Redis still refuses says so again at its next try.
    if store
        .queue
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty()
    {
        store.set_error(None);
    }
    // The writer waits for this.
    store.wake.notify_all();
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
                let text = payload.split_once(' ').map_or(payload.as_str(), |(_, t)| t);
                match decode_message(text) {
                    Ok((_, record)) => apply(store, l.as_ref(), record),
                    Err(e) => malformed(&keys.channel, &e),
                }
            }
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e.into()),
        }
        if beat.elapsed() >= HEARTBEAT {
            // Redis counting fewer changes than it did: it lost some (replaced, flushed or
            // restored under this connection): merge everything again.
            let n = count(&mut con, keys)?;
            if n < store.trusted.load(Ordering::Relaxed) {
                return Err(Failure::from(String::from(
                    "Redis counts fewer changes than it did (restored or flushed?); merging again",
                )));
            }
            store.counted(n);
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
