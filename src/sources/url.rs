//! URL lists: the list-file format fetched over HTTP(S) with ureq (rustls), at ignite and
//! every `refresh_secs`, with conditional requests so an unchanged list costs one small
//! request. A failed refresh keeps the last good list.

use std::time::{Duration, Instant};

use super::parse_list;
use crate::rules::Target;

use super::MAX_LIST_BYTES as MAX_BODY;

/// One URL list and what the last good fetch said about it.
pub(crate) struct UrlList {
    pub set: String,
    pub url: String,
    pub refresh: Duration,
    agent: ureq::Agent,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// What a fetch found.
pub(crate) enum Fetched {
    /// A new list.
    List(Vec<Target>),
    /// 304: the list is as it was.
    Unchanged,
}

impl UrlList {
    pub fn new(set: String, url: String, refresh_secs: u64, timeout_secs: u64) -> UrlList {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(timeout_secs)))
            .http_status_as_error(false)
            .build()
            .into();
        UrlList {
            set,
            url,
            refresh: Duration::from_secs(refresh_secs),
            agent,
            etag: None,
            last_modified: None,
        }
    }

    /// Fetches the list (conditionally, after a good fetch). The whole body is parsed
    /// before any of it is used; the error says what went wrong, with the line.
    pub fn fetch(&mut self) -> Result<Fetched, String> {
        let mut req = self.agent.get(&self.url);
        if let Some(etag) = &self.etag {
            req = req.header("If-None-Match", etag);
        }
        if let Some(lm) = &self.last_modified {
            req = req.header("If-Modified-Since", lm);
        }
        let mut res = req.call().map_err(|e| format!("{}: {e}", self.url))?;
        let status = res.status().as_u16();
        if status == 304 {
            // Only an answer to a conditional request: a first fetch has nothing to keep.
            if self.etag.is_none() && self.last_modified.is_none() {
                return Err(format!(
                    "{}: HTTP 304 to a request that was not conditional",
                    self.url
                ));
            }
            return Ok(Fetched::Unchanged);
        }
        if status != 200 {
            return Err(format!("{}: HTTP {status}", self.url));
        }
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (etag, last_modified) = (header("etag"), header("last-modified"));
        let body = res
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| format!("{}: {e}", self.url))?;
        let list = parse_list(&body)
            .map_err(|e| format!("{}:{}: `{}`: {}", self.url, e.line, e.text, e.message))?;
        self.etag = etag;
        self.last_modified = last_modified;
        Ok(Fetched::List(list))
    }
}

/// Starts a thread that refetches each list every `refresh` and hands new lists (or the
/// error) to `apply`; it ends when `apply` returns `false`.
pub(crate) fn refresh_urls<F>(mut lists: Vec<UrlList>, mut apply: F) -> std::io::Result<()>
where
    F: FnMut(&str, Result<Option<Vec<Target>>, String>) -> bool + Send + 'static,
{
    std::thread::Builder::new()
        .name("rocket-allow-url-lists".into())
        .spawn(move || {
            let mut due: Vec<Instant> = lists.iter().map(|l| Instant::now() + l.refresh).collect();
            loop {
                // Look at least once a second whether the app is still there.
                std::thread::sleep(Duration::from_millis(200).min(
                    due.iter().min().map_or(Duration::from_secs(1), |d| {
                        d.saturating_duration_since(Instant::now())
                    }),
                ));
                if !apply("", Ok(None)) {
                    return;
                }
                for (list, when) in lists.iter_mut().zip(due.iter_mut()) {
                    if Instant::now() < *when {
                        continue;
                    }
                    *when = Instant::now() + list.refresh;
                    let result = list.fetch().map(|f| match f {
                        Fetched::List(l) => Some(l),
                        Fetched::Unchanged => None,
                    });
                    if !apply(&list.set, result) {
                        return;
                    }
                }
            }
        })?;
    Ok(())
}
