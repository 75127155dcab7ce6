//! Ban reasons, interned: a ban holds a 4-byte label, and each distinct reason is kept once
//! however many bans give it (automatic bans give a handful of reasons to thousands of bans).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The label of a ban without a reason.
pub(crate) const NONE: u32 = 0;

#[derive(Default)]
struct Inner {
    by_text: HashMap<Arc<str>, u32>,
    /// Index `label - 1`: the text and how many bans hold it; `None` when free.
    slots: Vec<Option<(Arc<str>, usize)>>,
    free: Vec<u32>,
}

/// The reasons in use.
#[derive(Default)]
pub(crate) struct Labels(RwLock<Inner>);

impl Labels {
    /// The label for `reason`, held once more (give it back with [`release`](Self::release)).
    pub fn hold(&self, reason: Option<&str>) -> u32 {
        self.hold_n(reason, 1)
    }

    /// The label for `reason`, held `n` times more (for `n` bans put at once).
    pub fn hold_n(&self, reason: Option<&str>, n: usize) -> u32 {
        let Some(reason) = reason else {
            return NONE;
        };
        let mut inner = self.0.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&label) = inner.by_text.get(reason) {
            if let Some((_, refs)) = &mut inner.slots[label as usize - 1] {
                *refs += n;
            }
            return label;
        }
        let text: Arc<str> = reason.into();
        let label = match inner.free.pop() {
            Some(label) => {
                inner.slots[label as usize - 1] = Some((text.clone(), n));
                label
            }
            None => {
                inner.slots.push(Some((text.clone(), n)));
                u32::try_from(inner.slots.len()).expect("fewer than 2^32 reasons")
            }
        };
        inner.by_text.insert(text, label);
        label
    }

    /// Gives back one hold of `label`; its text is dropped with the last.
    pub fn release(&self, label: u32) {
        if label == NONE {
            return;
        }
        let mut inner = self.0.write().unwrap_or_else(|e| e.into_inner());
        let slot = &mut inner.slots[label as usize - 1];
        let Some((text, refs)) = slot else {
            return;
        };
        *refs -= 1;
        if *refs == 0 {
            let text = text.clone();
            *slot = None;
            inner.by_text.remove(&text);
            inner.free.push(label);
        }
    }

    /// The reason behind `label`.
    pub fn text(&self, label: u32) -> Option<String> {
        if label == NONE {
            return None;
        }
        let inner = self.0.read().unwrap_or_else(|e| e.into_inner());
        inner.slots[label as usize - 1]
            .as_ref()
            .map(|(t, _)| t.to_string())
    }

    /// Distinct reasons held (for tests).
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.0.read().unwrap().by_text.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_kept_while_a_ban_holds_it() {
        let labels = Labels::default();
        assert_eq!(labels.hold(None), NONE);
        let a = labels.hold(Some("scanner"));
        assert_eq!(labels.hold(Some("scanner")), a);
        let b = labels.hold(Some("login"));
        assert_ne!(a, b);
        labels.release(a);
        assert_eq!(labels.text(a).as_deref(), Some("scanner"));
        labels.release(a);
        assert_eq!(labels.text(a), None);
        assert_eq!(labels.count(), 1);
        // The freed label is used again.
        assert_eq!(labels.hold(Some("other")), a);
        assert_eq!(labels.text(b).as_deref(), Some("login"));
    }
}
