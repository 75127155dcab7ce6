//! The background work the fairing starts at liftoff that changes what requests are decided
//! by: list files and GeoIP databases watched, URL lists fetched again.

use std::sync::{Arc, Weak};

use crate::decide::Shared;
use crate::observe::Source;
use crate::rules::Target;
use crate::sources;

/// Starts reloading list files when they change. The watcher holds only a weak handle, so
/// it ends once the app's state is gone.
pub(super) fn watch_list_files(shared: &Arc<Shared>) {
    let files = std::mem::take(&mut *shared.watched.lock().unwrap_or_else(|e| e.into_inner()));
    if files.is_empty() {
        return;
    }
    let weak = Arc::downgrade(shared);
    let started = sources::watch_files(files, move |set, result| {
        apply_source(&weak, set, result.map(Some), Source::File)
    });
    if let Err(e) = started {
        log::error!(target: "rocket_allow", "rocket-allow: cannot watch list files: {e}");
    }
}

/// Starts reading a database file again when it changes (replaced by rename, or rewritten
/// and then left alone for half a second); a file that cannot be used keeps the last good
/// networks. The watcher holds only a weak handle.
pub(super) fn watch_geoip(shared: &Arc<Shared>) {
    let files = std::mem::take(&mut *shared.geo_watched.lock().unwrap_or_else(|e| e.into_inner()));
    if files.is_empty() {
        return;
    }
    let weak = Arc::downgrade(shared);
    let started = sources::watch(files, "rocket-allow-geoip", move |file| {
        let Some(shared) = weak.upgrade() else {
            return false;
        };
        let name = file.set.as_str();
        let outcome = match file.gone() {
            true => Err(format!("`{}` is gone", file.path.display())),
            false => shared
                .update_if(|c| Ok(crate::geoip::reread(&c.geo, name)?.map(|geo| c.with_geo(geo)))),
        };
        match outcome {
            Ok(false) => {}
            Ok(true) => {
                shared.metrics.reloaded(Source::File);
                log::info!(target: "rocket_allow", "allow.geoip.{name}: reloaded");
            }
            Err(e) => {
                shared.metrics.refresh_failed(Source::File, name, 1);
                log::error!(target: "rocket_allow",
                    "allow.geoip.{name}: {e}; keeping the networks last read");
            }
        }
        true
    });
    if let Err(e) = started {
        log::error!(target: "rocket_allow", "rocket-allow: cannot watch allow.geoip files: {e}");
    }
}

/// Starts refetching URL lists (a thread each) every `refresh_secs`, failed fetches sooner;
/// the threads end once the app's state is gone.
#[cfg(feature = "url-lists")]
pub(super) fn refresh_url_lists(shared: &Arc<Shared>) {
    let lists = std::mem::take(&mut *shared.urls.lock().unwrap_or_else(|e| e.into_inner()));
    if lists.is_empty() {
        return;
    }
    let weak = Arc::downgrade(shared);
    let started = sources::refresh_urls(lists, move |set, result| {
        apply_source(&weak, set, result, Source::Url)
    });
    if let Err(e) = started {
        log::error!(target: "rocket_allow", "rocket-allow: cannot refresh URL lists: {e}");
    }
}

/// Applies what a source produced for `set`: new entries (`Some`), nothing new (`None`), or
/// why it cannot be used (the last good list stays). `false` once the app is gone.
fn apply_source(
    shared: &Weak<Shared>,
    set: &str,
    result: Result<Option<Vec<Target>>, String>,
    source: Source,
) -> bool {
    let Some(shared) = shared.upgrade() else {
        return false;
    };
    // The same entries as now (a touched file, a list sent again) change nothing: no
    // recompile, no reload counted or logged.
    let outcome = result.and_then(|entries| match entries {
        None => Ok(None),
        Some(entries) => {
            let count = entries.len();
            shared
                .replace_set(set, entries)
                .map(|changed| changed.then_some(count))
        }
    });
    let done = match source {
        Source::Url => "fetched",
        _ => "reloaded",
    };
    match outcome {
        Ok(None) => shared.sources.ok(set),
        Ok(Some(count)) => {
            shared.sources.ok(set);
            shared.metrics.reloaded(source);
            log::info!(target: "rocket_allow", "allow.sets.{set}: {done}, {count} entries")
        }
        Err(e) => {
            shared.sources.failed(set, &e);
            shared.metrics.refresh_failed(source, set, 1);
            log::error!(target: "rocket_allow", "allow.sets.{set}: {e}; keeping the last good list")
        }
    }
    true
}
