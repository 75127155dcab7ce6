//! The write path: local changes written to Redis the moment they are queued, by a thread
//! of its own, newer wins; refused writes (out of memory, no permission, a replica) stay
//! queued and are tried again; a full read's write-back of what Redis lacks.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::{Commands, Connection};

use super::failure::{connection_failed, count_error, err, malformed, Failure};
use super::record::{decode, Change};
use super::sync::{apply, Keys, SCAN, TIMEOUT};
use super::{now_ms, Local, Store};

/// Writes a record if it is newer than the one Redis holds (versions compared as time,
/// instance, sequence: a record sent again, after a reply that never came, is the same
/// version and changes nothing), notes when it may go, appends it to the change log (the
/// last 100,000 changes, so that an instance that was away replays what it missed instead
/// of reading everything) and publishes it with its log id. Returns the log id, or 0 when
/// Redis held the same or a newer record.
/// KEYS: the hash, the expiry set, the channel, the log. ARGV: field, value, made,
/// instance, sequence, drop-at (or ""), message, the writer's clock now, the log entry
/// (which record changed: a replay reads the record itself).
pub(super) const WRITE: &str = r#"
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
