//! Named address sets: the built-in ones and `[allow.sets]`, with every `@name` reference
//! resolved. Nothing here knows about Rocket or DNS: host names stay names.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};

use crate::rules::Target;

/// The built-in sets, `@name` in any rule or trusted-proxy entry. They cannot be redefined.
///
/// ```
/// let loopback = rocket_allow::BUILTIN_SETS.iter().find(|(n, _)| *n == "loopback").unwrap();
/// assert_eq!(loopback.1, &["127.0.0.0/8", "::1"]);
/// ```
pub const BUILTIN_SETS: &[(&str, &[&str])] = &[
    ("loopback", &["127.0.0.0/8", "::1"]),
    (
        "private",
        &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
    ),
    ("link_local", &["169.254.0.0/16", "fe80::/10"]),
    ("cgnat", &["100.64.0.0/10"]),
];

/// Every set, flattened: each is a list of addresses, networks, `all` and host names,
/// with nested sets expanded in place (duplicates kept, order kept).
#[derive(Debug, Clone, Default)]
pub(crate) struct Sets {
    flat: HashMap<String, Vec<Target>>,
}

/// Why the sets could not be resolved: the key and the message.
pub(crate) type SetError = (String, String);

impl Sets {
    /// Resolves the user's sets against each other and the built-in ones.
    /// The entries are borrowed, not copied: a set of a million entries is copied once,
    /// into its flattened form.
    pub fn build<V: Borrow<Vec<Target>>>(user: &BTreeMap<String, V>) -> Result<Sets, SetError> {
        let builtins: Vec<(&str, Vec<Target>)> = BUILTIN_SETS
            .iter()
            .map(|(name, entries)| {
                let parsed = entries
                    .iter()
                    .map(|e| Target::parse(e).expect("built-in entries are valid"))
                    .collect();
                (*name, parsed)
            })
            .collect();
        let mut raw: HashMap<&str, &[Target]> =
            builtins.iter().map(|(n, e)| (*n, e.as_slice())).collect();
        for (name, entries) in user {
            let key = format!("allow.sets.{name}");
            if !crate::rules::is_set_name(name) {
                return Err((
                    key,
                    "a set name is 1 to 64 letters, digits, `_` or `-`".into(),
                ));
            }
            if raw.contains_key(name.as_str()) {
                return Err((
                    key,
                    format!("`@{name}` is built in and cannot be redefined"),
                ));
            }
            let entries: &Vec<Target> = entries.borrow();
            for (i, e) in entries.iter().enumerate() {
                if let Target::Set(r) = e {
                    if !user.contains_key(r) && !BUILTIN_SETS.iter().any(|(b, _)| b == r) {
                        return Err((format!("{key}[{i}]"), format!("unknown set `@{r}`")));
                    }
                }
            }
            raw.insert(name, entries);
        }
        let mut flat: HashMap<String, Vec<Target>> = HashMap::new();
        for name in raw.keys() {
            let mut path = Vec::new();
            expand(&raw, name, &mut path, &mut flat)?;
        }
        Ok(Sets { flat })
    }

    /// The entries of `@name`, flattened; `None` if there is no such set.
    pub fn get(&self, name: &str) -> Option<&[Target]> {
        self.flat.get(name).map(Vec::as_slice)
    }

    /// Checks that a reference names a set; the error says which.
    pub fn check(&self, target: &Target) -> Result<(), String> {
        match target {
            Target::Set(name) if self.get(name).is_none() => Err(format!(
                "unknown set `@{name}` (define it under [allow.sets], or use a built-in one: {})",
                BUILTIN_SETS
                    .iter()
                    .map(|(n, _)| format!("@{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Ok(()),
        }
    }

    /// A target with sets expanded: the set's entries, or the target itself.
    pub fn expand<'a>(&'a self, target: &'a Target) -> &'a [Target] {
        match target {
            Target::Set(name) => self.get(name).unwrap_or_default(),
            other => std::slice::from_ref(other),
        }
    }
}

/// Depth-first expansion, each set once (memoized in `flat`), its entries without
/// repeats, so sets that refer to each other many times over stay as small as what they
/// contain. `path` holds the sets being expanded, so a cycle names them all.
fn expand<'a>(
    raw: &'a HashMap<&str, &[Target]>,
    name: &'a str,
    path: &mut Vec<&'a str>,
    flat: &mut HashMap<String, Vec<Target>>,
) -> Result<(), SetError> {
    if flat.contains_key(name) {
        return Ok(());
    }
    if let Some(start) = path.iter().position(|p| *p == name) {
        let cycle: Vec<String> = path[start..]
            .iter()
            .chain([&name])
            .map(|n| format!("@{n}"))
            .collect();
        return Err((
            format!("allow.sets.{}", path[start]),
            format!(
                "sets refer to each other in a cycle: {}",
                cycle.join(" -> ")
            ),
        ));
    }
    let entries: &[Target] = raw.get(name).copied().unwrap_or_default();
    // A plain list (a list file, a feed) is used as it is: repeats are harmless to the
    // matcher, and hashing a million entries would only slow reloads down.
    if !entries.iter().any(|e| matches!(e, Target::Set(_))) {
        flat.insert(name.to_string(), entries.to_vec());
        return Ok(());
    }
    path.push(name);
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        match entry {
            Target::Set(inner) => {
                expand(raw, inner, path, flat)?;
                for t in &flat[inner.as_str()] {
                    if seen.insert(t.clone()) {
                        out.push(t.clone());
                    }
                }
            }
            other => {
                if seen.insert(other.clone()) {
                    out.push(other.clone());
                }
            }
        }
    }
    path.pop();
    flat.insert(name.to_string(), out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(list: &[(&str, &[&str])]) -> Result<Sets, SetError> {
        let user: BTreeMap<String, Vec<Target>> = list
            .iter()
            .map(|(n, e)| {
                (
                    n.to_string(),
                    e.iter().map(|v| Target::parse(v).unwrap()).collect(),
                )
            })
            .collect();
        Sets::build(&user)
    }

    #[test]
    fn nested_sets_flatten_in_order() {
        let s = sets(&[
            ("office", &["203.0.113.0/24", "@vpn"]),
            ("vpn", &["198.51.100.7", "@loopback"]),
        ])
        .unwrap();
        let office: Vec<String> = s
            .get("office")
            .unwrap()
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(
            office,
            [
                "203.0.113.0/24",
                "198.51.100.7/32",
                "127.0.0.0/8",
                "::1/128"
            ]
        );
    }

    #[test]
    fn cycles_unknown_sets_and_built_ins_are_errors() {
        let (key, msg) = sets(&[("a", &["@b"]), ("b", &["@c"]), ("c", &["@a"])]).unwrap_err();
        assert!(key.starts_with("allow.sets."), "{key}");
        assert!(
            msg.contains("@a -> @b -> @c -> @a") || msg.contains("cycle"),
            "{msg}"
        );
        let (key, msg) = sets(&[("a", &["10.0.0.1", "@nope"])]).unwrap_err();
        assert_eq!(key, "allow.sets.a[1]");
        assert!(msg.contains("@nope"), "{msg}");
        let (key, msg) = sets(&[("private", &["10.0.0.1"])]).unwrap_err();
        assert_eq!(key, "allow.sets.private");
        assert!(msg.contains("built in"), "{msg}");
        let (_, msg) = sets(&[("self", &["@self"])]).unwrap_err();
        assert!(msg.contains("@self -> @self"), "{msg}");
    }
}
