//! How far a walk over a MaxMind DB search tree goes, counted before anything walks it.
//! A tree may share nodes (MaxMind's own files point `::ffff:0:0/96` and `2002::/16` at the
//! IPv4 subtree), so a walk can meet far more paths than the tree has nodes: a chain of 100
//! nodes each pointing twice to the next is 2^100 paths, every byte of it valid, and
//! maxminddb's walk (its `verify` too) would follow them for ever, silently where they
//! lead to an alias it skips. maxminddb checks the layout (record size, tree inside the
//! file) but has no way to read nodes, so their records are read here.

/// Checks that every path from the root of the search tree in `file` (`nodes` nodes of
/// `record_size` bits a record, as maxminddb has checked them) ends within `bits` levels
/// and that there are no more than a tree of that size with a few aliases can hold: a
/// tree of n nodes has n + 1 ends, and each alias walks the IPv4 subtree once more. One
/// pass over the nodes (each counted once, with what is below it), no recursion.
pub(super) fn bounded(
    file: &[u8],
    nodes: usize,
    record_size: u16,
    bits: usize,
) -> Result<(), String> {
    let most = (nodes as u64 + 1).saturating_mul(8);
    let record = |node: usize, side: usize| -> usize {
        match record_size {
            24 => {
                let at = node * 6 + side * 3;
                usize::from(file[at]) << 16
                    | usize::from(file[at + 1]) << 8
                    | usize::from(file[at + 2])
            }
            28 => {
                let at = node * 7;
                let nibble = usize::from(file[at + 3]);
                let (high, low) = match side {
                    0 => (nibble >> 4, at),
                    _ => (nibble & 0x0f, at + 4),
                };
                high << 24
                    | usize::from(file[low]) << 16
                    | usize::from(file[low + 1]) << 8
                    | usize::from(file[low + 2])
            }
            _ => {
                let at = node * 8 + side * 4;
                u32::from_be_bytes([file[at], file[at + 1], file[at + 2], file[at + 3]]) as usize
            }
        }
    };
    // Per node: the paths below it (0 until done) and its height (EXPANDED while its
    // children are being counted): 5 bytes a node.
    const EXPANDED: u8 = u8::MAX;
    let most = most.min(u64::from(u32::MAX - 1)) as u32;
    let mut paths = vec![0u32; nodes];
    let mut height = vec![0u8; nodes];
    let mut stack = vec![0usize];
    // An end (data, or no data) is one path of height 0.
    let below = |child: usize, paths: &[u32], height: &[u8]| -> Option<(u32, u8)> {
        match child.cmp(&nodes) {
            std::cmp::Ordering::Less => (paths[child] > 0).then(|| (paths[child], height[child])),
            _ => Some((1, 0)),
        }
    };
    let cycle = || Err("its search tree has a cycle".to_string());
    while let Some(&node) = stack.last() {
        if node >= nodes || paths[node] > 0 {
            stack.pop();
            continue;
        }
        let (left, right) = (record(node, 0), record(node, 1));
        match (below(left, &paths, &height), below(right, &paths, &height)) {
            (Some((l, lh)), Some((r, rh))) => {
                let h = lh.max(rh) + 1;
                if usize::from(h) > bits {
                    return Err(format!("its search tree is deeper than {bits} levels"));
                }
                let p = l.saturating_add(r);
                if p > most {
                    return Err(format!(
                        "its search tree leads to more than {most} networks with {nodes} nodes (shared nodes)"
                    ));
                }
                (paths[node], height[node]) = (p, h);
                stack.pop();
            }
            // Expanded before, and a child still not counted: only through a cycle.
            _ if height[node] == EXPANDED => return cycle(),
            pending => {
                height[node] = EXPANDED;
                for (child, counted) in [(left, pending.0), (right, pending.1)] {
                    if counted.is_none() {
                        if height[child] == EXPANDED {
                            return cycle();
                        }
                        stack.push(child);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bounded;

    /// A search tree of `records` (left, right) in each record size.
    fn tree(records: &[(u32, u32)], size: u16) -> Vec<u8> {
        let mut out = Vec::new();
        for &(l, r) in records {
            match size {
                24 => {
                    out.extend_from_slice(&l.to_be_bytes()[1..]);
                    out.extend_from_slice(&r.to_be_bytes()[1..]);
                }
                28 => {
                    out.extend_from_slice(&l.to_be_bytes()[1..]);
                    out.push((((l >> 24) & 0x0f) << 4) as u8 | ((r >> 24) & 0x0f) as u8);
                    out.extend_from_slice(&r.to_be_bytes()[1..]);
                }
                _ => {
                    out.extend_from_slice(&l.to_be_bytes());
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
        }
        out
    }

    #[test]
    fn cycles_deep_chains_and_shared_nodes_are_refused_and_trees_pass() {
        for size in [24, 28, 32] {
            let check = |records: &[(u32, u32)], bits| {
                bounded(&tree(records, size), records.len(), size, bits)
            };
            // 0 -> (1, end), 1 -> (end, data): a tree.
            assert_eq!(check(&[(1, 2), (2, 3)], 32), Ok(()));
            // Records past 2^24 in the 28 and 32 bit sizes.
            assert_eq!(check(&[(1, 0x0123_4567), (2, 0x0abc_def0)], 32), Ok(()));
            let err = |records: &[(u32, u32)], bits| check(records, bits).unwrap_err();
            assert!(err(&[(0, 1)], 32).contains("cycle"));
            assert!(err(&[(1, 2), (2, 0)], 32).contains("cycle"));
            // 40 nodes in a chain: deeper than IPv4's 32 bits.
            let chain: Vec<(u32, u32)> = (1..=40).map(|n| (n, 40)).collect();
            assert!(err(&chain, 32).contains("deeper"));
            assert_eq!(check(&chain, 128), Ok(()));
            // 100 nodes each pointing twice to the next: 2^100 paths.
            let shared: Vec<(u32, u32)> = (1..=100).map(|n| (n, n)).collect();
            assert!(err(&shared, 128).contains("more than"));
        }
    }
}
