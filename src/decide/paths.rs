//! Which policy a request path falls under: a trie of path segments, so choosing among
//! any number of path-scoped policies costs one hash lookup per segment of the request's
//! path, never a scan of the policies.

use std::collections::HashMap;

/// Paths (as segments) → policy index; the longest path at or above a request's path wins.
#[derive(Debug, Default)]
pub(crate) struct PathTable {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    policy: Option<usize>,
    children: HashMap<String, Node>,
}

impl PathTable {
    /// Adds `segments` (a policy path as the router sees it) for `policy`.
    pub fn insert(&mut self, segments: &[String], policy: usize) {
        let mut node = &mut self.root;
        for s in segments {
            node = node.children.entry(s.clone()).or_default();
        }
        node.policy = Some(policy);
    }

    /// The policy of the longest configured path that is a prefix (segment-wise) of the
    /// request's path segments, if any.
    pub fn lookup<'a>(&self, segments: impl Iterator<Item = &'a str>) -> Option<usize> {
        let mut node = &self.root;
        let mut found = node.policy;
        for s in segments {
            match node.children.get(s) {
                Some(next) => {
                    node = next;
                    found = node.policy.or(found);
                }
                None => break,
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn longest_path_wins_segment_wise() {
        let mut t = PathTable::default();
        t.insert(&segs("/admin"), 1);
        t.insert(&segs("/admin/public"), 2);
        t.insert(&segs("/static"), 3);
        let look = |t: &PathTable, p: &str| t.lookup(p.split('/').filter(|s| !s.is_empty()));
        assert_eq!(look(&t, "/admin"), Some(1));
        assert_eq!(look(&t, "/admin/x"), Some(1));
        assert_eq!(look(&t, "/admin/public/x"), Some(2));
        assert_eq!(look(&t, "/administrator"), None);
        assert_eq!(look(&t, "/"), None);
        assert_eq!(look(&t, "/static/css/a.css"), Some(3));
        t.insert(&[], 4);
        assert_eq!(look(&t, "/anything"), Some(4));
        assert_eq!(look(&t, "/admin/y"), Some(1));
    }
}
