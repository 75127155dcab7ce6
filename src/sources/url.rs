//! URL lists: the list-file format fetched over HTTP(S) with ureq (rustls), at ignite and
//! every `refresh_secs`, each list by a thread of its own, with conditional requests so an
//! unchanged list costs one small request. A failed fetch keeps the last good list and is
//! retried with backoff (1 s, doubling, at most `refresh_secs`).

use std::time::{Duration, Instant};

use super::parse_list;
use crate::rules::Target;

use super::MAX_LIST_BYTES as MAX_BODY;

/// How soon a failed fetch is first tried again.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// One URL list and what the last good fetch said about it.
pub(crate) struct UrlList {
    pub set: String,
    pub url: String,
    pub refresh: Duration,
    agent: ureq::Agent,
    etag: Option<String>,
    last_modified: Option<String>,
    /// Whether a list may be empty or lose more than half of its entries at once.
    allow_shrink: bool,
    /// How many entries the last good list had; `None` before the first.
    good: Option<usize>,
    /// After failed fetches, how long until the next try; `None` after a good one.
    retry: Option<Duration>,
}

/// What a fetch found.
pub(crate) enum Fetched {
    /// A new list.
    List(Vec<Target>),
    /// 304: the list is as it was.
    Unchanged,
}

impl UrlList {
    pub fn new(
        set: String,
        url: String,
        refresh_secs: u64,
        timeout_secs: u64,
        allow_shrink: bool,
    ) -> UrlList {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(timeout_secs)))
            .http_status_as_error(false)
            // Uncompressed, so that the response's own framing (Content-Length or chunked)
            // says where the body ends: ureq drops Content-Length when it decompresses.
            .accept_encoding("identity")
            .build()
            .into();
        UrlList {
            set,
            url,
            refresh: Duration::from_secs(refresh_secs),
            agent,
            etag: None,
            last_modified: None,
            allow_shrink,
            good: None,
            retry: None,
        }
    }

    /// How long after the last fetch the next one is due: `refresh` after a good fetch (or
    /// a 304); after a failed one (at ignite or later) 1 s, doubling with every failure in a
    /// row, at most `refresh`.
    pub fn next_fetch(&self) -> Duration {
        self.retry.unwrap_or(self.refresh)
    }

    /// Fetches the list (conditionally, after a good fetch). The whole body is parsed
    /// before any of it is used; the error says what went wrong, with the line.
    pub fn fetch(&mut self) -> Result<Fetched, String> {
        let fetched = self.try_fetch();
        self.retry = match (&fetched, self.retry) {
            (Ok(_), _) => None,
            (Err(_), None) => Some(FIRST_RETRY.min(self.refresh)),
            (Err(_), Some(last)) => Some(last.saturating_mul(2).min(self.refresh)),
        };
        fetched
    }

    fn try_fetch(&mut self) -> Result<Fetched, String> {
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
        // Only a list: plain text, octets, or no type said. An HTML error page or a JSON
        // answer is not one, whatever it happens to parse as.
        if let Some(value) = res.headers().get("content-type") {
            let value = String::from_utf8_lossy(value.as_bytes());
            let mime = value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if mime != "text/plain" && mime != "application/octet-stream" {
                return Err(format!(
                    "{}: the content type is `{}`, not a list (text/plain, \
                     application/octet-stream or none)",
                    self.url,
                    mime.chars().take(100).collect::<String>()
                ));
            }
        }
        // A body that ends where the connection closes cannot be told from one cut short
        // (at a line break, the prefix would parse as a whole list).
        let chunked = res.headers().get_all("transfer-encoding").iter().any(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("chunked"))
        });
        if !chunked && !res.headers().contains_key("content-length") {
            return Err(format!(
                "{}: the response's end cannot be known (neither Content-Length nor chunked \
                 transfer encoding)",
                self.url
            ));
        }
        let body = res
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| format!("{}: {e}", self.url))?;
        let list = parse_list(&body)
            .map_err(|e| format!("{}:{}: `{}`: {}", self.url, e.line, e.text, e.message))?;
        // A feed that suddenly lists nobody, or half as many, is more likely broken than
        // right; unless the set says so, the last good list stays.
        if !self.allow_shrink {
            if list.is_empty() {
                return Err(format!(
                    "{}: the list is empty (allow_shrink = true takes an empty list)",
                    self.url
                ));
            }
            if let Some(before) = self.good.filter(|&before| list.len() * 2 < before) {
                return Err(format!(
                    "{}: the list has {} entries, down from {before}: more than half of it \
                     gone (allow_shrink = true takes that)",
                    self.url,
                    list.len()
                ));
            }
        }
        self.good = Some(list.len());
        self.etag = etag;
        self.last_modified = last_modified;
        Ok(Fetched::List(list))
    }
}

/// Starts one thread per list (so a feed that stalls until its timeout holds up no other
/// list) that refetches it every `refresh` and hands new lists (or the error) to `apply`; a
/// failed fetch is retried sooner (see [`UrlList::next_fetch`]). Each thread ends when
/// `apply` returns `false`.
pub(crate) fn refresh_urls<F>(lists: Vec<UrlList>, apply: F) -> std::io::Result<()>
where
    F: Fn(&str, Result<Option<Vec<Target>>, String>) -> bool + Clone + Send + 'static,
{
    for mut list in lists {
        let apply = apply.clone();
        crate::background::spawn("rocket-allow-url-list", move || {
            let mut due = Instant::now() + list.next_fetch();
            loop {
                // Look at least five times a second whether the app is still there.
                std::thread::sleep(
                    Duration::from_millis(200).min(due.saturating_duration_since(Instant::now())),
                );
                if !apply("", Ok(None)) {
                    return;
                }
                if Instant::now() < due {
                    continue;
                }
                let result = list.fetch().map(|f| match f {
                    Fetched::List(l) => Some(l),
                    Fetched::Unchanged => None,
                });
                due = Instant::now() + list.next_fetch();
                if !apply(&list.set, result) {
                    return;
                }
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn failed_fetches_back_off_up_to_refresh_then_refresh_again() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/list.txt", listener.local_addr().unwrap());
        let mut list = UrlList::new("s".into(), url, 5, 2, false);
        let failing = std::thread::spawn(move || {
            // Five failures (HTTP 500), then a good list.
            for (i, stream) in listener.incoming().take(6).enumerate() {
                let mut s = stream.unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let (status, body) = if i < 5 {
                    (500, "")
                } else {
                    (200, "192.0.2.1\n")
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        assert_eq!(list.next_fetch(), Duration::from_secs(5));
        for secs in [1, 2, 4, 5, 5] {
            assert!(list.fetch().is_err());
            assert_eq!(list.next_fetch(), Duration::from_secs(secs));
        }
        assert!(list.fetch().is_ok());
        assert_eq!(list.next_fetch(), Duration::from_secs(5));
        failing.join().unwrap();
    }
}
