//! The grammar of `Authentication-Results` (RFC 8601 §2.2) and of
//! `ARC-Authentication-Results` (RFC 8617 §4.1.1: `i=N;` before the same
//! payload), read and written in one place: our header writer quotes with
//! [`value`] and [`comment`], [`crate::auth_results::claims`] compares the authserv-id
//! that [`authserv_id`] reads, and [`crate::forwarding`] reads a trusted
//! sealer's record with [`parse_arc`]. What one side writes, the other
//! reads back exactly (tests/properties.rs).
//!
//! RFC 5322 lexical rules apply throughout: comments (nested, with
//! quoted-pairs) and folding white space may appear between any two items,
//! and a quoted-string is one value whatever it contains — a `;` or a
//! `method=result` inside quotes never starts a result (issue #21: the
//! forged `"x;mailkey=pass header.d=victim…"@victim` local part).
//!
//! Reading is strict where it matters and forgiving elsewhere: a result
//! whose `method=result` does not parse is dropped whole, and so is any
//! property that does not parse (real verifiers write `action=none` or a
//! `header.b=` with `/`); neither can turn text inside a quoted-string or
//! comment into a result or a property. docs/protocol.md §8.
//!
//! A module of its own, below all that reads or writes the grammar (the
//! config, the ARC check, forwarding, our header): ARCHITECTURE.md,
//! "Module graph".

use std::fmt;

/// The result words of RFC 8601 used by all checks (`checks::Status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    /// SPF only.
    SoftFail,
    /// SPF only.
    Neutral,
    None,
    TempError,
    PermError,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::SoftFail => "softfail",
            Self::Neutral => "neutral",
            Self::None => "none",
            Self::TempError => "temperror",
            Self::PermError => "permerror",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed `Authentication-Results` payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Results {
    /// The authserv-id, unquoted (quoted-pairs resolved).
    pub authserv_id: String,
    /// The results in order; empty for `none`.
    pub results: Vec<ResInfo>,
}

/// One `method=result` with its properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResInfo {
    /// Lower case, without a `/version`.
    pub method: String,
    /// Lower case.
    pub result: String,
    /// `ptype.property` (lower case) and the value as [`pvalue`] reads it.
    pub props: Vec<(String, String)>,
}

impl ResInfo {
    /// The value of the first property `name` (`ptype.property`).
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses an `Authentication-Results` value (after the colon). `None` when
/// the authserv-id does not parse: nothing in the field can be read then.
pub fn parse(value: &str) -> Option<Results> {
    let mut c = Cursor::new(value);
    payload(&mut c)
}

/// Parses an `ARC-Authentication-Results` value: the instance `i=` and the
/// payload. `None` when the instance or the authserv-id does not parse.
pub fn parse_arc(value: &str) -> Option<(u32, Results)> {
    let mut c = Cursor::new(value);
    c.cfws()?;
    if !c.eat_ignore_case(b'i') {
        return None;
    }
    c.cfws()?;
    if !c.eat(b'=') {
        return None;
    }
    c.cfws()?;
    let digits = c.take_while(|b| b.is_ascii_digit());
    // RFC 8617 §4.2.1: 1 to 50, at most two digits.
    let instance: u32 = digits.parse().ok().filter(|_| digits.len() <= 2)?;
    c.cfws()?;
    if !c.eat(b';') {
        return None;
    }
    Some((instance, payload(&mut c)?))
}

/// The authserv-id of an `Authentication-Results` value as RFC 8601 reads
/// it: after optional CFWS, a token or a quoted-string (unquoted).
pub fn authserv_id(value: &str) -> Option<String> {
    let mut c = Cursor::new(value);
    c.cfws()?;
    c.value()
}

/// The authserv-id as a lax reader might take it: the first word after
/// white space and comments, up to `;`, `(` or white space, with every `"`
/// and `\` dropped. `None` inside a comment that never ends.
pub(crate) fn lax_authserv_id(value: &str) -> Option<String> {
    let mut c = Cursor::new(value);
    c.cfws()?;
    let word = c.take_while(|b| !matches!(b, b';' | b'(' | b' ' | b'\t' | b'\r' | b'\n'));
    Some(
        word.chars()
            .filter(|ch| !matches!(ch, '"' | '\\'))
            .collect(),
    )
}

/// `v` as a property value: bare when it reads back as itself (a token,
/// or an address or domain whose local part is a dot-atom), otherwise a
/// quoted-string with `"` and `\` escaped. Control characters cannot be
/// written in a quoted-string and are left out.
pub fn value(v: &str) -> String {
    if is_token(v) || is_bare_address(v) {
        return v.to_string();
    }
    quoted(v)
}

/// `v` as an authserv-id: RFC 8601 reads it as a `value`, a token or a
/// quoted-string; an address form such as `@a` must be quoted there.
pub fn authserv_id_value(v: &str) -> String {
    if is_token(v) {
        return v.to_string();
    }
    quoted(v)
}

fn quoted(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for ch in v.chars().filter(|ch| !ch.is_control()) {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

/// The most characters of a comment's text we write.
pub(crate) const COMMENT_MAX: usize = 300;

/// `text` as a comment, `(text)`: printable ASCII, with `(`, `)` and `\`
/// replaced by spaces (nothing to escape, nothing a lax reader could
/// misread) and anything else by `?`, at most [`COMMENT_MAX`] characters.
pub fn comment(text: &str) -> String {
    let inner: String = text
        .chars()
        .take(COMMENT_MAX)
        .map(|ch| match ch {
            '(' | ')' | '\\' => ' ',
            ' '..='~' => ch,
            _ => '?',
        })
        .collect();
    format!("({inner})")
}

/// `local@domain` (local part a dot-atom or quoted-string) or `@domain`:
/// the local part as written and the domain. RFC 5321/5322 addr-spec
/// without obsolete forms; the domain per [`is_domain_name`].
pub(crate) fn addr_spec(v: &str) -> Option<(&str, &str)> {
    let at = if v.starts_with('"') {
        let mut c = Cursor::new(v);
        c.quoted_string()?;
        c.at
    } else {
        v.rfind('@')?
    };
    let (local, rest) = v.split_at(at);
    let domain = rest.strip_prefix('@')?;
    let local_ok = local.is_empty() || local.starts_with('"') || is_dot_atom(local);
    (local_ok && is_domain_name(domain)).then_some((local, domain))
}

/// A domain name as RFC 6376 §3.5 writes `d=` (RFC 8601's `domain-name`):
/// dot-separated labels of letters, digits and inner hyphens, no trailing
/// dot.
pub(crate) fn is_domain_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `authres-payload` from after the `:` (or the ARC instance's `;`).
fn payload(c: &mut Cursor<'_>) -> Option<Results> {
    c.cfws()?;
    let authserv_id = c.value()?;
    let mut results = Vec::new();
    // An optional version after the authserv-id (`mx.example.org 1;`).
    if c.cfws().is_some() {
        c.take_while(|b| b.is_ascii_digit());
    }
    loop {
        if c.cfws().is_none() || c.at_end() || !c.eat(b';') {
            break;
        }
        let start = c.at;
        match resinfo(c) {
            Some(Some(r)) => results.push(r),
            // `none`: no results (RFC 8601 `no-result`).
            Some(None) => {}
            None => {
                c.at = start;
                c.skip_resinfo();
            }
        }
    }
    Some(Results {
        authserv_id,
        results,
    })
}

/// One `resinfo` after its `;`: `Some(None)` for `none`, `None` when its
/// `method=result` does not parse.
fn resinfo(c: &mut Cursor<'_>) -> Option<Option<ResInfo>> {
    c.cfws()?;
    let method = c.keyword()?.to_ascii_lowercase();
    c.cfws()?;
    if c.eat(b'/') {
        c.cfws()?;
        c.take_while(|b| b.is_ascii_digit());
        c.cfws()?;
    }
    if !c.eat(b'=') {
        return (method == "none" && c.at_resinfo_end()).then_some(None);
    }
    c.cfws()?;
    let result = c.keyword()?.to_ascii_lowercase();
    let mut props = Vec::new();
    loop {
        c.cfws()?;
        if c.at_resinfo_end() {
            break;
        }
        let start = c.at;
        match propspec(c) {
            Some(Some(prop)) => props.push(prop),
            Some(None) => {} // reason=
            None => {
                c.at = start;
                c.skip_item()?;
            }
        }
    }
    Some(Some(ResInfo {
        method,
        result,
        props,
    }))
}

/// `ptype.property=pvalue` (`Some(Some(..))`) or `reason=value`
/// (`Some(None)`); `None` for anything else.
fn propspec(c: &mut Cursor<'_>) -> Option<Option<(String, String)>> {
    let ptype = c.keyword()?.to_ascii_lowercase();
    c.cfws()?;
    if ptype == "reason" && c.eat(b'=') {
        c.cfws()?;
        c.value()?;
        return c.at_item_end().then_some(None);
    }
    if !c.eat(b'.') {
        return None;
    }
    c.cfws()?;
    let property = c.keyword()?.to_ascii_lowercase();
    c.cfws()?;
    if !c.eat(b'=') {
        return None;
    }
    let v = pvalue(c)?;
    Some(Some((format!("{ptype}.{property}"), v)))
}

/// `pvalue = [CFWS] ( value / [ [ local-part ] "@" ] domain-name )`: a
/// quoted-string's content, a token, or the address as written.
fn pvalue(c: &mut Cursor<'_>) -> Option<String> {
    c.cfws()?;
    let start = c.at;
    if c.peek() == Some(b'"') {
        let content = c.quoted_string()?;
        if c.peek() != Some(b'@') {
            return c.at_item_end().then_some(content);
        }
        c.at += 1;
        c.take_while(is_word_byte);
    } else {
        c.take_while(is_word_byte);
    }
    let text = &c.s[start..c.at];
    let ok = if text.contains('@') {
        addr_spec(text).is_some()
    } else {
        is_token(text)
    };
    (ok && c.at_item_end()).then(|| text.to_string())
}

/// RFC 2045 `token`: printable US-ASCII except SPACE and tspecials.
fn is_token(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// An address or `@domain` that [`pvalue`] reads back bare: a dot-atom of
/// ASCII `atext` (or nothing) before the `@`.
fn is_bare_address(v: &str) -> bool {
    addr_spec(v).is_some_and(|(local, _)| local.is_ascii() && !local.starts_with('"'))
}

/// RFC 5322 `dot-atom-text` (with RFC 6532 UTF-8 in `atext`).
fn is_dot_atom(v: &str) -> bool {
    v.split('.').all(|atom| {
        !atom.is_empty()
            && atom.bytes().all(|b| {
                b >= 0x80 || b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
            })
    })
}

/// Bytes of a bare word: anything but white space, controls and the
/// characters that end an item (`;`, `(`, `)`, `"`).
fn is_word_byte(b: u8) -> bool {
    b >= 0x80 || (b.is_ascii_graphic() && !b";()\"".contains(&b))
}

/// Nested comments deeper than this are not read (a comment cannot hide
/// structure either way; the bound keeps the counter honest).
const MAX_COMMENT_DEPTH: u32 = 64;

struct Cursor<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Self { s, at: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.at).copied()
    }

    fn at_end(&self) -> bool {
        self.at >= self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        let yes = self.peek() == Some(b);
        if yes {
            self.at += 1;
        }
        yes
    }

    fn eat_ignore_case(&mut self, b: u8) -> bool {
        let yes = self.peek().is_some_and(|p| p.eq_ignore_ascii_case(&b));
        if yes {
            self.at += 1;
        }
        yes
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.at;
        while self.peek().is_some_and(&f) {
            self.at += 1;
        }
        &self.s[start..self.at]
    }

    /// Skips folding white space and comments; `None` inside a comment
    /// that never ends.
    fn cfws(&mut self) -> Option<()> {
        loop {
            self.take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
            if self.peek() != Some(b'(') {
                return Some(());
            }
            self.comment()?;
        }
    }

    /// A comment from its `(`: nested, with quoted-pairs.
    fn comment(&mut self) -> Option<()> {
        let mut depth = 0u32;
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'\\' => self.at += usize::from(!self.at_end()),
                b'(' => {
                    depth += 1;
                    if depth > MAX_COMMENT_DEPTH {
                        return None;
                    }
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// A quoted-string from its `"`: the content with quoted-pairs
    /// resolved and folding (CR, LF) removed.
    fn quoted_string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = String::new();
        let mut chars = self.s[self.at..].char_indices();
        while let Some((i, ch)) = chars.next() {
            match ch {
                '"' => {
                    self.at += i + 1;
                    return Some(out);
                }
                '\\' => out.push(chars.next()?.1),
                '\r' | '\n' => {}
                _ => out.push(ch),
            }
        }
        None
    }

    /// RFC 2045 `value`: a quoted-string (its content) or a token.
    fn value(&mut self) -> Option<String> {
        if self.peek() == Some(b'"') {
            return self.quoted_string();
        }
        let token = self.take_while(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b));
        (!token.is_empty()).then(|| token.to_string())
    }

    /// RFC 8601 `Keyword` (RFC 5321 `Ldh-str`).
    fn keyword(&mut self) -> Option<&'a str> {
        let k = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-');
        (!k.is_empty() && !k.ends_with('-')).then_some(k)
    }

    /// After an item: the end, white space, a comment or a `;`.
    fn at_item_end(&self) -> bool {
        matches!(
            self.peek(),
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b'(' | b';')
        )
    }

    fn at_resinfo_end(&self) -> bool {
        matches!(self.peek(), None | Some(b';'))
    }

    /// Skips one item that did not parse, up to white space, a comment or
    /// a `;` outside quotes; `None` at a quoted-string that never ends.
    fn skip_item(&mut self) -> Option<()> {
        while !self.at_item_end() {
            if self.peek() == Some(b'"') {
                self.quoted_string()?;
            } else {
                self.at += 1;
            }
        }
        Some(())
    }

    /// Skips a result that did not parse, up to the next `;` outside
    /// quotes and comments (or the end when one never ends).
    fn skip_resinfo(&mut self) {
        loop {
            if self.cfws().is_none() || self.skip_item().is_none() {
                self.at = self.s.len();
            }
            if self.at_resinfo_end() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
