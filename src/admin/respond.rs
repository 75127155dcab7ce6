//! The admin page's answers: HTML and JSON with the headers that keep them safe, the
//! stylesheet, and the redirect after a change.

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};

/// Nothing but the page's own stylesheet and forms: no script at all, no frame, no
/// external asset, forms only to this origin.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A body with a content type and the admin page's headers.
pub(crate) struct Answer {
    pub status: Status,
    /// JSON, else HTML.
    pub json: bool,
    pub body: String,
    /// How many matched, when the body lists only some (`X-Total-Count`).
    pub total: Option<usize>,
}

impl Answer {
    pub fn html(body: String) -> Answer {
        Answer {
            status: Status::Ok,
            json: false,
            body,
            total: None,
        }
    }

    pub fn json(value: &impl serde::Serialize) -> Answer {
        Answer {
            status: Status::Ok,
            json: true,
            body: serde_json::to_string(value).unwrap_or_else(|_| "null".into()),
            total: None,
        }
    }

    pub fn with_total(mut self, total: usize) -> Answer {
        self.total = Some(total);
        self
    }

    pub fn with_status(mut self, status: Status) -> Answer {
        self.status = status;
        self
    }
}

impl<'r> Responder<'r, 'static> for Answer {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        if let Some(total) = self.total {
            response.header(Header::new("X-Total-Count", total.to_string()));
        }
        response
            .status(self.status)
            .header(if self.json {
                ContentType::JSON
            } else {
                ContentType::HTML
            })
            .header(Header::new("Content-Security-Policy", CSP))
            .header(Header::new("X-Content-Type-Options", "nosniff"))
            .header(Header::new("X-Frame-Options", "DENY"))
            // Not `no-referrer`: browsers then send `Origin: null` with the page's own forms.
            .header(Header::new("Referrer-Policy", "same-origin"))
            // Addresses and bans: nothing for a shared cache or the back button to keep.
            .header(Header::new("Cache-Control", "no-store"))
            .sized_body(self.body.len(), std::io::Cursor::new(self.body))
            .ok()
    }
}

/// The stylesheet: small, served from the page itself (the app may have no internet).
pub(crate) const CSS: &str = include_str!("admin.css");
