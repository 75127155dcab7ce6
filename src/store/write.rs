//! The write path: local changes written to Redis the moment they are queued, by a thread
//! of its own, newer wins; refused writes (out of memory, no permission, a replica) stay
//! queued and are tried again; a full read's write-back of what Redis lacks.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::{Commands, Connection};

use super::apply::apply;
use super::failure::{connection_failed, count_error, err, malformed, Failure};
use super::keys::{Keys, SCAN, TIMEOUT};
use super::record::{decode, Change};
use super::{now_ms, Local, Store};

/// Writes a record if it is newer than the one Redis holds (versions compared as time,
/// instance, sequence: a record sent again, after a reply that never came, is the same
/// version and changes nothing), notes when it may go, appends it to the change log (the
/// last 100,000 changes, so that an instance that was away replays what it missed instead
/// of reading everything), counts it in `<prefix>:seq` (a Redis restored from an older
/// snapshot counts less than its instances saw) and publishes it with its log id.
///
/// Checks come first and the writes after, so it never stops half way: a hash of another
/// type is an error (nothing written); an expiry set, a log or a count someone else wrote
/// with another type is dropped and started again.
///
/// A record is kept in Redis at least as long as the one it replaces would have been: a ban
/// shortened (or lifted) while an instance held the longer one must outlive it, or that
/// instance would write the longer one back.
///
/// Returns `[log id, count]`, or 0 when Redis held the same or a newer record.
/// KEYS: the hash, the expiry set, the channel, the log, the count. ARGV: field, value,
/// made, instance, sequence, drop-at (or ""), message, the writer's clock now, the log
/// entry (which record changed: a replay reads the record itself).
pub(super) const WRITE: &str = r#"
local ht = redis.call('TYPE', KEYS[1])['ok']
if ht ~= 'none' and ht ~= 'hash' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' is not a hash')
end
local function usable(key, kind)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= kind then redis.call('DEL', key) end
end
usable(KEYS[2], 'zset')
usable(KEYS[4], 'stream')
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
-- The count: a number, or started again. Checked without writing: the first write must
-- be this INCR, which Redis refuses when out of memory (after one write, a script is let
-- finish whatever memory says).
local st = redis.call('TYPE', KEYS[5])['ok']
if st ~= 'none' and (st ~= 'string' or not tonumber(redis.call('GET', KEYS[5]))) then
  redis.call('DEL', KEYS[5])
end
local n = redis.call('INCR', KEYS[5])
local member = KEYS[1] .. '|' .. ARGV[1]
local drop = ARGV[6]
if cur then
  local before = redis.call('ZSCORE', KEYS[2], member)
  if not before then
    drop = ''
  elseif drop ~= '' and tonumber(before) > tonumber(drop) then
    drop = before
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if drop == '' then
  redis.call('ZREM', KEYS[2], member)
else
  redis.call('ZADD', KEYS[2], drop, member)
end
local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', 'r', ARGV[9])
redis.call('PUBLISH', KEYS[3], id .. ' ' .. ARGV[7])
return { id, n }
"#;

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
            // Only while the reader's session is in sync: after a reconnect, the reader
            // checks first whether Redis lost changes (a write before would hide it).
            let _ = store.wake.wait_timeout_while(q, wait, |q| {
                (q.is_empty() || refused || !store.connected.load(Ordering::Relaxed))
                    && !store.stopped.load(Ordering::Relaxed)
            });
        }
        if !store.connected.load(Ordering::Relaxed) {
            continue;
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

/// One record's WRITE call.
fn write_cmd(write: &str, keys: &Keys, change: &Change) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(write)
        .arg(5)
        .arg(keys.hash(change.kind))
        .arg(&keys.expiry)
        .arg(&keys.channel)
        .arg(&keys.log)
        .arg(&keys.seq)
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

/// The count of a WRITE reply (`[log id, count]`), if it wrote.
fn written(reply: &redis::Value) -> Option<u64> {
    match reply {
        redis::Value::Array(items) => match items.as_slice() {
            [_, redis::Value::Int(n)] => u64::try_from(*n).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// How far ahead of this instance's clock a record Redis holds must be to be taken for
/// another instance's clock running ahead rather than a later change.
const AHEAD_MS: u64 = 1000;

/// Writes one change (newer wins); when Redis held a newer record, that one is applied
/// here. Sent again after a reply that never came, it changes nothing the second time.
///
/// A change made here is made after every record this instance held; if Redis holds one
/// dated later than this instance's clock (another instance's clock runs ahead), the change
/// is made again with a version after that record's, so that what the operator just did is
/// done, and a warning says so.
fn write_one(
    store: &Store,
    con: &mut Connection,
    write: &str,
    keys: &Keys,
    change: &Change,
    local: &dyn Local,
) -> redis::RedisResult<()> {
    let mut change = std::borrow::Cow::Borrowed(change);
    for _ in 0..3 {
        // One command, not a pipeline: its error keeps Redis's code (OOM, NOPERM...).
        let reply: redis::Value = write_cmd(write, keys, &change).query(con)?;
        if let Some(n) = written(&reply) {
            store.counted(n);
            return Ok(());
        }
        let hash = keys.hash(change.kind);
        let newer: Option<String> = con.hget(&hash, &change.field)?;
        let Some(newer) = newer else {
            return Ok(());
        };
        let record = match decode(change.kind, &change.field, &newer) {
            Ok(record) => record,
            Err(e) => {
                malformed(&format!("{hash} {}", change.field), &e);
                return Ok(());
            }
        };
        let theirs = record.version();
        if theirs.ms <= now_ms().saturating_add(AHEAD_MS) || theirs == change.version {
            apply(store, local, record);
            return Ok(());
        }
        log::warn!(target: "rocket_allow",
            "rocket-allow: fleet store: `{hash} {}` holds a record made {} ms ahead of this \
             instance's clock (is another instance's clock ahead?); this instance's change is \
             made again after it", change.field, theirs.ms.saturating_sub(now_ms()));
        let again = change.after(store.clock.after(Some(theirs)), &store.instance);
        if let Ok(mine) = decode(again.kind, &again.field, &again.value) {
            apply(store, local, mine);
        }
        change = std::borrow::Cow::Owned(again);
    }
    Ok(())
}

/// Writes the queued local changes, oldest first. One that fails stays at the front: for
/// the connection, until the next one; refused by Redis (out of memory, no permission, a
/// replica, a key of the wrong type), until Redis takes it, tried again with backoff and
/// shown in the status, the metrics and the log. Never dropped.
pub(super) fn flush(
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
    let mut count = 0;
    for chunk in changes.chunks(SCAN) {
        let mut pipe = redis::pipe();
        for change in chunk {
            pipe.add_command(write_cmd(write, keys, change));
        }
        let replies: Vec<redis::Value> = pipe.query(con)?;
        for n in replies.iter().filter_map(written) {
            store.counted(n);
            count += 1;
        }
    }
    Ok(count)
}
