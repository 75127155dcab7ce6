//! The check, on every connection, that the configured Redis user may run every command
//! the store runs on its keys and its channel: a user restricted to the prefix's keys but
//! not its channel (Redis 7 denies channels by default to new users) would otherwise have
//! every change refused while the instance looked connected. What is missing is named, with
//! the ACL rule that grants it.

use redis::Connection;

use super::failure::Failure;
use super::keys::Keys;

/// Asks Redis, for the connection's own user, about every command the store and the
/// automatic-ban counts run (`redis.acl_check_cmd`, Redis 7). Runs as a read-only script:
/// it works on a Redis out of memory and on a replica too. ARGV: the prefix.
const CHECK: &str = r#"#!lua flags=no-writes
local p = ARGV[1]
local ab = p .. ':ab:check:c:x'
local checks = {
  {'PING'},
  {'GET', p .. ':epoch'}, {'SET', p .. ':epoch', 'x', 'NX'},
  {'GET', p .. ':seq'}, {'INCR', p .. ':seq'}, {'TYPE', p .. ':bans'},
  {'HGET', p .. ':bans', 'x'}, {'HSET', p .. ':bans', 'x', 'x'}, {'HDEL', p .. ':bans', 'x'},
  {'HSCAN', p .. ':bans', '0'}, {'HSCAN', p .. ':sets', '0'}, {'HSCAN', p .. ':modes', '0'},
  {'HSET', p .. ':sets', 'x', 'x'}, {'HSET', p .. ':modes', 'x', 'x'},
  {'ZADD', p .. ':expiry', '0', 'x'}, {'ZREM', p .. ':expiry', 'x'},
  {'ZRANGEBYSCORE', p .. ':expiry', '0', '0'},
  {'XADD', p .. ':log', '*', 'c', 'x'}, {'XRANGE', p .. ':log', '-', '+'},
  {'XREVRANGE', p .. ':log', '+', '-'},
  {'PUBLISH', p .. ':changes', 'x'}, {'SUBSCRIBE', p .. ':changes'},
  {'SCRIPT', 'LOAD', 'x'}, {'EVALSHA', 'x', '0'},
  {'TIME'}, {'EXISTS', ab}, {'DEL', ab}, {'ZADD', ab, '0', 'x'}, {'ZCARD', ab},
  {'ZREMRANGEBYSCORE', ab, '0', '0'}, {'ZREMRANGEBYRANK', ab, '0', '0'}, {'ZPOPMIN', ab},
  {'PEXPIRE', ab, '1'}, {'SET', ab, 'x'}, {'GET', ab}, {'ZREM', ab, 'x'},
}
local missing = {}
for _, c in ipairs(checks) do
  local ok, allowed = pcall(redis.acl_check_cmd, unpack(c))
  if ok and not allowed then
    missing[#missing + 1] = table.concat(c, ' ', 1, math.min(#c, 2))
  end
end
return missing
"#;

/// `Ok` when the user may run everything; otherwise a `noperm` failure naming what it may
/// not, and the rule to add.
pub(super) fn check(con: &mut Connection, keys: &Keys) -> Result<(), Failure> {
    let prefix = keys.prefix.trim_end_matches(':');
    let missing: Vec<String> = match redis::cmd("EVAL").arg(CHECK).arg(0).arg(prefix).query(con) {
        Ok(missing) => missing,
        Err(e) => {
            let failure = Failure::from(e);
            if failure.kind == "noperm" {
                return Err(Failure {
                    kind: "noperm",
                    text: format!(
                        "the Redis user may not run scripts ({}); it needs at least: {}",
                        failure.text,
                        rule(prefix)
                    ),
                });
            }
            // An older Redis without `redis.acl_check_cmd`: the writes themselves say
            // what is refused.
            if failure.kind == "command" {
                return Ok(());
            }
            return Err(failure);
        }
    };
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure {
        kind: "noperm",
        text: format!(
            "the Redis user may not run {}; it needs: {}",
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", "),
            rule(prefix)
        ),
    })
}

/// The ACL rule that gives a user what the store needs, and nothing of other keys.
pub(crate) fn rule(prefix: &str) -> String {
    format!(
        "ACL SETUSER <user> on ><password> resetkeys ~{prefix}:* resetchannels &{prefix}:changes \
         +ping +time +get +set +incr +type +del +exists +pexpire +hget +hset +hdel +hscan +zadd +zrem +zcard \
         +zpopmin +zrangebyscore +zremrangebyscore +zremrangebyrank +xadd +xrange +xrevrange \
         +publish +subscribe +eval +evalsha +script|load"
    )
}
