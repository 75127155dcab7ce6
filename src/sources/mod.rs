//! Where sets' entries come from besides Rocket.toml: list files, read at ignite and
//! reloaded while the app runs. A reload is parsed and compiled off the request path and
//! swapped in whole; a bad file keeps the last good list.

mod list;
#[cfg(feature = "url-lists")]
mod url;
mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::SetConfig;
use crate::error::Error;
use crate::rules::Target;

use list::{parse_list, ListError};
#[cfg(feature = "url-lists")]
pub(crate) use url::{refresh_urls, Fetched, UrlList};
pub(crate) use watch::{watch, watch_files, Watched};

/// The largest list file (or URL list body) accepted.
pub(crate) const MAX_LIST_BYTES: u64 = 256 << 20;

/// Reads a list file whole; the error names `path:line`, the line and what is wrong.
pub(crate) fn read_list(path: &Path) -> Result<Vec<Target>, String> {
    // Only regular files (a named pipe would block the reader forever), and not huge ones.
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("`{}` is not a regular file", path.display()));
    }
    if meta.len() > MAX_LIST_BYTES {
        return Err(format!(
            "`{}` is larger than {} MiB",
            path.display(),
            MAX_LIST_BYTES >> 20
        ));
    }
    let text = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let text = String::from_utf8(text).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        format!("{}:{line}: not UTF-8 text", path.display())
    })?;
    parse_list(&text).map_err(
        |ListError {
             line,
             text,
             message,
         }| { format!("{}:{line}: `{text}`: {message}", path.display()) },
    )
}

/// The sets whose entries come from list files: name and absolute path.
fn list_files(sets: &BTreeMap<String, SetConfig>) -> Result<Vec<(String, PathBuf)>, Error> {
    sets.iter()
        .filter_map(|(name, set)| match set {
            SetConfig::File { file } => Some((name, file)),
            SetConfig::Inline(_) | SetConfig::Url { .. } => None,
        })
        .map(|(name, file)| {
            std::path::absolute(file)
                .map(|p| (name.clone(), p))
                .map_err(|e| Error::Invalid {
                    key: format!("allow.sets.{name}.file"),
                    message: format!("`{}`: {e}", file.display()),
                })
        })
        .collect()
}

/// What the sets start with, and what keeps them current.
pub(crate) struct AtIgnite {
    pub entries: BTreeMap<String, Vec<Target>>,
    pub watched: Vec<Watched>,
    #[cfg(feature = "url-lists")]
    pub urls: Vec<UrlList>,
}

/// Every set's entries at ignite: inline ones as configured, list files read now and URL
/// lists fetched now (a file that cannot be read or has a bad line fails ignite, naming
/// `file:line`; a URL that cannot be fetched, or whose list is empty without
/// `allow_shrink = true`, fails it unless `on_error = "warn"`).
pub(crate) fn entries_at_ignite(sets: &BTreeMap<String, SetConfig>) -> Result<AtIgnite, Error> {
    let mut entries = crate::config::known_entries(sets);
    let mut watched = Vec::new();
    for (name, path) in list_files(sets)? {
        let w = Watched::new(name.clone(), path);
        let list = read_list(&w.path).map_err(|message| Error::Invalid {
            key: format!("allow.sets.{name}.file"),
            message,
        })?;
        entries.insert(name, list);
        watched.push(w);
    }
    #[cfg(feature = "url-lists")]
    let mut urls = Vec::new();
    for (name, set) in sets {
        let SetConfig::Url {
            url,
            refresh_secs,
            on_error,
            timeout_secs,
            allow_shrink,
        } = set
        else {
            continue;
        };
        let key = format!("allow.sets.{name}.url");
        #[cfg(not(feature = "url-lists"))]
        {
            let _ = (url, refresh_secs, on_error, timeout_secs, allow_shrink);
            return Err(Error::Invalid {
                key,
                message: "URL lists need rocket-allow's `url-lists` feature".into(),
            });
        }
        #[cfg(feature = "url-lists")]
        {
            let mut list = UrlList::new(
                name.clone(),
                url.clone(),
                *refresh_secs,
                *timeout_secs,
                *allow_shrink,
            );
            match list.fetch() {
                Ok(Fetched::List(l)) => {
                    entries.insert(name.clone(), l);
                }
                Ok(Fetched::Unchanged) => {}
                Err(message) if *on_error == crate::config::OnError::Warn => {
                    log::warn!(target: "rocket_allow",
                        "{key}: {message}; starting with the set empty (on_error = \"warn\")");
                }
                Err(message) => return Err(Error::Invalid { key, message }),
            }
            urls.push(list);
        }
    }
    Ok(AtIgnite {
        entries,
        watched,
        #[cfg(feature = "url-lists")]
        urls,
    })
}
