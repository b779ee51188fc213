//! The challenge page: one HTML document per state, no script, no image,
//! no external resource. Accessible by construction: a real `<label>` for
//! every field, the help and the error tied to the field
//! (`aria-describedby`, `aria-invalid`), the error announced (`role=alert`),
//! one `<h1>`, `lang`, a page title that says where one is. It shows only
//! what the sender typed: its own address and the recipient's.

use crate::rfc3339 as time;

/// What the page says.
pub enum View<'a> {
    /// The form; `error` after a wrong or missing answer.
    Form {
        sender: &'a str,
        recipient: &'a str,
        question: &'a str,
        tries_left: u32,
        error: Option<&'a str>,
    },
    Solved {
        sender: &'a str,
        recipient: &'a str,
        until: u64,
    },
    /// A final state: (status line, title, explanation).
    Ended(&'static str, &'static str, &'static str),
}

pub(crate) const NOT_FOUND: View<'static> = View::Ended(
    "404 Not Found",
    "This link is not valid",
    "The link is not one this mail server made, or it was changed on the way. \
     Copy the whole link from the message that was returned to you.",
);
pub const EXPIRED: View<'static> = View::Ended(
    "410 Gone",
    "This link has expired",
    "Send your message again: the returned message will carry a new link.",
);
pub(crate) const USED: View<'static> = View::Ended(
    "410 Gone",
    "This link was used already",
    "Each link works once. If your message is still refused, send it again \
     for a new link.",
);
pub(crate) const BURNT: View<'static> = View::Ended(
    "410 Gone",
    "Too many wrong answers",
    "This link no longer works. Send your message again for a new link.",
);
pub(crate) const SLOW_DOWN: View<'static> = View::Ended(
    "429 Too Many Requests",
    "Too many requests",
    "Please wait an hour and try again.",
);
pub(crate) const UNAVAILABLE: View<'static> = View::Ended(
    "503 Service Unavailable",
    "Please try again later",
    "The mail server cannot record your answer just now. Nothing was lost: \
     open the link again in a few minutes.",
);

impl View<'_> {
    /// The HTTP status line.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Form { error: Some(_), .. } => "422 Unprocessable Content",
            Self::Form { .. } | Self::Solved { .. } => "200 OK",
            Self::Ended(status, ..) => status,
        }
    }

    pub fn render(&self) -> String {
        let (title, body) = match self {
            Self::Form {
                sender,
                recipient,
                question,
                tries_left,
                error,
            } => {
                let (s, r) = (escape(sender), escape(recipient));
                let invalid = if error.is_some() {
                    " aria-invalid=\"true\""
                } else {
                    ""
                };
                let alert = error.map_or(String::new(), |e| {
                    format!(
                        "<p id=\"answer-error\" class=\"error\" role=\"alert\">{}</p>\n",
                        escape(e)
                    )
                });
                let described = if error.is_some() {
                    "answer-help answer-error"
                } else {
                    "answer-help"
                };
                (
                    format!("Let your mail through to {r}"),
                    format!(
                        "<p>Your message from <strong>{s}</strong> to <strong>{r}</strong> was \
                         refused. Answer one question to show that a person sends it, and mail \
                         from {s} to {r} will be let through; it is still checked and marked.</p>\n\
                         {alert}<form method=\"post\">\n\
                         <p><label for=\"answer\">{q}</label></p>\n\
                         <p id=\"answer-help\">Type the number in digits or in words. \
                         You have {tries_left} {tries} left.</p>\n\
                         <p><input id=\"answer\" name=\"answer\" type=\"text\" inputmode=\"numeric\" \
                         autocomplete=\"off\" required aria-describedby=\"{described}\"{invalid}></p>\n\
                         <p><input id=\"consent\" name=\"consent\" type=\"checkbox\" value=\"yes\" required> \
                         <label for=\"consent\">I wrote to {r} and want my mail delivered</label></p>\n\
                         <p><button type=\"submit\">Let my mail through</button></p>\n</form>",
                        q = escape(question),
                        tries = if *tries_left == 1 { "try" } else { "tries" },
                    ),
                )
            }
            Self::Solved {
                sender,
                recipient,
                until,
            } => {
                let (s, r) = (escape(sender), escape(recipient));
                let until = time::day(i64::try_from(*until).unwrap_or(i64::MAX));
                (
                    "Done: send your message again".to_string(),
                    format!(
                        "<p role=\"status\">Thank you. Mail from <strong>{s}</strong> to \
                         <strong>{r}</strong> will be let through until {until}.</p>\n\
                         <p>Send your message again now: the refused copy was not kept.</p>"
                    ),
                )
            }
            Self::Ended(_, title, text) => (title.to_string(), format!("<p>{text}</p>")),
        };
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{t} – mail check</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <main>\n<h1>{t}</h1>\n{body}\n</main>\n</body>\n</html>\n",
            t = title
        )
    }
}

/// Large text, strong contrast, a visible focus ring.
const STYLE: &str = "body{font:1.125rem/1.5 system-ui,sans-serif;color:#111;background:#fff;\
margin:0}main{max-width:40rem;margin:2rem auto;padding:0 1rem}\
input[type=text]{font:inherit;padding:.4rem;border:2px solid #333;width:12rem}\
input[type=checkbox]{width:1.3rem;height:1.3rem;vertical-align:middle}\
button{font:inherit;padding:.5rem 1rem;border:2px solid #0b3d91;background:#0b3d91;color:#fff}\
:focus{outline:3px solid #c60;outline-offset:2px}.error{color:#a00;font-weight:bold}";

/// Text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_escaped_and_fields_labelled() {
        let html = View::Form {
            sender: "\"<script>\"@evil.test",
            recipient: "alice@example.org",
            question: "What is two plus two?",
            tries_left: 3,
            error: Some("That is not the answer."),
        }
        .render();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("<label for=\"answer\">What is two plus two?</label>"));
        assert!(html.contains("<label for=\"consent\">"));
        assert!(html.contains("role=\"alert\""));
        assert!(html.contains("aria-invalid=\"true\""));
        assert!(!html.contains("<script"));
        assert!(!html.contains("<img"));
    }
}
