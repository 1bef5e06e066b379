//! Cluster slots: which of the 16,384 slots a key hashes to (CRC16/XMODEM of the key, or of its
//! hash tag: the part between the first `{` and the next `}`, when not empty), and a check that
//! a pipeline or command touches one slot, as a cluster requires of transactions, scripts and
//! the redis crate's pipelines.
//!
//! Which arguments of a command are keys comes from the table in [`command_keys`], which covers
//! every command the project sends. A command missing from it fails the check with its name, so
//! a new command cannot slip past unchecked.

use redis::{Cmd, Pipeline};

/// Slots in a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// The slot of `key`.
pub fn slot(key: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(hash_tag(key).unwrap_or(key)) % SLOTS
}

fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let close = key[open + 1..].iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &key[open + 1..open + 1 + close])
}

fn args(cmd: &Cmd) -> Vec<&[u8]> {
    cmd.args_iter()
        .filter_map(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect()
}

/// The key arguments of `cmd`, or an error naming a command the table does not know.
pub fn command_keys(cmd: &Cmd) -> Result<Vec<Vec<u8>>, String> {
    let args = args(cmd);
    let Some(name) = args.first() else {
        return Ok(Vec::new());
    };
    let name = String::from_utf8_lossy(name).to_ascii_uppercase();
    let rest = &args[1..];
    let numkeys = |at: usize| -> Result<Vec<Vec<u8>>, String> {
        let n: usize = rest
            .get(at)
            .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
            .ok_or_else(|| format!("{name} without a key count"))?;
        Ok(rest
            .iter()
            .skip(at + 1)
            .take(n)
            .map(|k| k.to_vec())
            .collect())
    };
    let keys = match name.as_str() {
        // No keys.
        "PING" | "INFO" | "DBSIZE" | "CONFIG" | "PUBLISH" | "SCRIPT" | "MULTI" | "EXEC"
        | "CLUSTER" | "FLUSHALL" | "FLUSHDB" | "SCAN" | "CLIENT" | "READONLY" | "TIME"
        | "SUBSCRIBE" | "PSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "MEMORY" | "WAIT"
        | "HELLO" | "SELECT" | "ECHO" => Vec::new(),
        // Every argument is a key.
        "DEL" | "UNLINK" | "EXISTS" | "MGET" | "TOUCH" | "WATCH" => {
            rest.iter().map(|k| k.to_vec()).collect()
        }
        // Scripts and stores with a key count.
        "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" | "FCALL" | "FCALL_RO" => numkeys(1)?,
        "ZUNIONSTORE" | "ZINTERSTORE" | "ZDIFFSTORE" => {
            let mut keys = numkeys(1)?;
            keys.extend(rest.first().map(|k| k.to_vec()));
            keys
        }
        "XREAD" | "XREADGROUP" => {
            let streams = rest
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))
                .ok_or_else(|| format!("{name} without STREAMS"))?;
            let after = &rest[streams + 1..];
            after[..after.len() / 2]
                .iter()
                .map(|k| k.to_vec())
                .collect()
        }
        // The first argument is the key.
        "GET" | "SET" | "SETEX" | "PSETEX" | "SETNX" | "GETDEL" | "GETEX" | "INCR" | "INCRBY"
        | "DECR" | "DECRBY" | "STRLEN" | "APPEND" | "TYPE" | "TTL" | "PTTL" | "EXPIRE"
        | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" | "PERSIST" | "HSET" | "HSETNX" | "HGET"
        | "HMGET" | "HGETALL" | "HDEL" | "HLEN" | "HEXISTS" | "HINCRBY" | "HINCRBYFLOAT"
        | "HKEYS" | "HVALS" | "HSCAN" | "SADD" | "SREM" | "SMEMBERS" | "SCARD" | "SISMEMBER"
        | "SRANDMEMBER" | "SPOP" | "SSCAN" | "ZADD" | "ZINCRBY" | "ZRANGE" | "ZRANGEBYSCORE"
        | "ZREVRANGE" | "ZREVRANGEBYSCORE" | "ZCOUNT" | "ZCARD" | "ZREM" | "ZSCORE" | "ZMSCORE"
        | "ZRANK" | "ZREMRANGEBYRANK" | "ZREMRANGEBYSCORE" | "ZPOPMIN" | "ZPOPMAX" | "ZSCAN"
        | "LLEN" | "LPUSH" | "RPUSH" | "LPOP" | "RPOP" | "LRANGE" | "LREM" | "LTRIM" | "LINDEX"
        | "XADD" | "XRANGE" | "XREVRANGE" | "XLEN" | "XTRIM" | "XDEL" | "XINFO" | "PFADD"
        | "PFCOUNT" | "DUMP" | "RESTORE" | "OBJECT" => {
            let at = usize::from(name == "XINFO" || name == "OBJECT");
            rest.get(at).map(|k| vec![k.to_vec()]).unwrap_or_default()
        }
        other => {
            return Err(format!(
                "the slot check does not know the command {other}; add its key positions to opossum-redis's table"
            ));
        }
    };
    Ok(keys)
}

/// Commands a cluster client splits by slot on its own (each key answered where it lives).
fn splits_by_slot(cmd: &Cmd) -> bool {
    args(cmd).first().is_some_and(|name| {
        [&b"DEL"[..], b"UNLINK", b"EXISTS", b"MGET", b"TOUCH"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
    })
}

fn one_slot<'a>(
    keys: impl IntoIterator<Item = &'a [u8]>,
    what: &str,
) -> Result<Option<u16>, String> {
    let mut first: Option<(&[u8], u16)> = None;
    for key in keys {
        let here = slot(key);
        match first {
            None => first = Some((key, here)),
            Some((other, there)) if there != here => {
                return Err(format!(
                    "{what} spans slots: {} (slot {there}) and {} (slot {here}); give the keys one hash tag or split the {what} by slot",
                    String::from_utf8_lossy(other),
                    String::from_utf8_lossy(key)
                ));
            }
            Some(_) => {}
        }
    }
    Ok(first.map(|(_, s)| s))
}

/// The keys of `cmd`; a command the table does not know has none when not `strict` (the
/// check on live connections must not refuse a command of a library's, such as apalis's).
fn keys_of(cmd: &Cmd, strict: bool) -> Result<Vec<Vec<u8>>, String> {
    match command_keys(cmd) {
        Err(_) if !strict => Ok(Vec::new()),
        other => other,
    }
}

/// Checks that one command touches one slot (commands the cluster client splits by slot are
/// exempt).
pub fn check_command(cmd: &Cmd, strict: bool) -> Result<(), String> {
    let keys = keys_of(cmd, strict)?;
    if splits_by_slot(cmd) {
        return Ok(());
    }
    one_slot(keys.iter().map(Vec::as_slice), "command").map(|_| ())
}

/// Checks that every key of `pipeline` (a transaction or not) hashes to one slot; returns an
/// error naming two keys that do not, or a command whose keys the table does not know.
pub fn check_one_slot(pipeline: &Pipeline) -> Result<(), String> {
    check_pipeline(pipeline, true)
}

/// [`check_one_slot`]; unknown commands pass when not `strict`.
pub(crate) fn check_pipeline(pipeline: &Pipeline, strict: bool) -> Result<(), String> {
    let mut keys = Vec::new();
    for cmd in pipeline.cmd_iter() {
        keys.extend(keys_of(cmd, strict)?);
    }
    one_slot(keys.iter().map(Vec::as_slice), "pipeline").map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `redis-cli CLUSTER KEYSLOT`.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"core:apalis:queues:list"), 2813);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        // An empty tag is no tag: the whole key is hashed.
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}".as_slice()));
        assert_ne!(slot(b"{}a"), slot(b"{}b"));
    }

    #[test]
    fn a_pipeline_across_slots_is_named() {
        let mut pipe = redis::pipe();
        pipe.get("{a}:1").get("{a}:2");
        assert!(check_one_slot(&pipe).is_ok());
        pipe.get("b");
        let error = check_one_slot(&pipe).unwrap_err();
        assert!(error.contains("{a}:1") && error.contains('b'), "{error}");
    }

    #[test]
    fn script_keys_are_read_from_the_key_count() {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg("abc")
            .arg(2)
            .arg("{x}:1")
            .arg("{x}:2")
            .arg("not-a-key");
        assert_eq!(command_keys(&cmd).unwrap().len(), 2);
        assert!(check_command(&cmd, true).is_ok());
        let mut cmd = redis::cmd("EVAL");
        cmd.arg("return 1").arg(2).arg("a").arg("b");
        assert!(check_command(&cmd, true).is_err());
    }

    #[test]
    fn unknown_commands_fail_the_check() {
        let error = command_keys(&redis::cmd("BLMOVE")).unwrap_err();
        assert!(error.contains("BLMOVE"), "{error}");
        assert!(check_command(&redis::cmd("BLMOVE"), false).is_ok());
    }
}
