/*
 * SPDX-FileCopyrightText: 2020 Stalwart Labs LLC <hello@stalw.art>
 *
 * SPDX-License-Identifier: Apache-2.0 OR MIT
 */

use super::{Alignment, DmarcRecord, FailureOptions, Policy, Psd, Uri};
use crate::DnsError;
use crate::{
    Error,
    parse::{N, T, TagParser, TxtRecordParser, V, Y},
    utf8::to_str_lossy,
};
use encodify::hex::decode_pair;
use std::slice::Iter;

impl TxtRecordParser for DmarcRecord {
    fn parse(bytes: &[u8]) -> crate::Result<Self> {
        let mut record = bytes.iter();
        if record.key().unwrap_or(0) != V
            || !record.match_bytes(b"DMARC1")
            || !record.seek_tag_end()
        {
            return Err(Error::Dns(DnsError::InvalidRecordType));
        }

        let mut dmarc = DmarcRecord {
            adkim: Alignment::Relaxed,
            aspf: Alignment::Relaxed,
            fo: FailureOptions::All,
            np: Policy::Unspecified,
            p: Policy::Unspecified,
            rua: vec![],
            ruf: vec![],
            sp: Policy::Unspecified,
            psd: Psd::Default,
            t: false,
        };

        while let Some(key) = record.key() {
            match key {
                ADKIM => {
                    dmarc.adkim = record.alignment()?;
                }
                ASPF => {
                    dmarc.aspf = record.alignment()?;
                }
                FO => {
                    dmarc.fo = record.report()?;
                }
                NP => {
                    dmarc.np = record.policy()?;
                }
                P => {
                    dmarc.p = record.policy()?;
                }
                RUA => {
                    dmarc.rua = record.uris()?;
                }
                RUF => {
                    dmarc.ruf = record.uris()?;
                }
                SP => {
                    dmarc.sp = record.policy()?;
                }
                PSD => {
                    dmarc.psd = match record.value() {
                        Y => Psd::Yes,
                        N => Psd::No,
                        _ => Psd::Default,
                    };
                }
                T => {
                    dmarc.t = record.value() == Y;
                }
                _ => {
                    record.ignore();
                }
            }
        }

        if dmarc.sp == Policy::Unspecified {
            dmarc.sp = dmarc.p;
        }
        if dmarc.np == Policy::Unspecified {
            dmarc.np = dmarc.sp;
        }

        Ok(dmarc)
    }
}

pub(crate) trait DMARCParser: Sized {
    fn alignment(&mut self) -> crate::Result<Alignment>;
    fn report(&mut self) -> crate::Result<FailureOptions>;
    fn policy(&mut self) -> crate::Result<Policy>;
    fn uris(&mut self) -> crate::Result<Vec<Uri>>;
}

impl DMARCParser for Iter<'_, u8> {
    fn alignment(&mut self) -> crate::Result<Alignment> {
        let a = match self.next_skip_whitespaces().unwrap_or(0) {
            b'r' | b'R' => Alignment::Relaxed,
            b's' | b'S' => Alignment::Strict,
            _ => return Err(Error::Parse),
        };
        if self.seek_tag_end() {
            Ok(a)
        } else {
            Err(Error::Parse)
        }
    }

    fn report(&mut self) -> crate::Result<FailureOptions> {
        let mut r = FailureOptions::All;

        loop {
            r = match self.next_skip_whitespaces().unwrap_or(0) {
                b'0' => FailureOptions::All,
                b'1' => FailureOptions::Any,
                b'd' | b'D' => {
                    if r == FailureOptions::Spf {
                        FailureOptions::DkimSpf
                    } else {
                        FailureOptions::Dkim
                    }
                }
                b's' | b'S' => {
                    if r == FailureOptions::Dkim {
                        FailureOptions::DkimSpf
                    } else {
                        FailureOptions::Spf
                    }
                }
                _ => return Err(Error::Parse),
            };
            match self.next_skip_whitespaces().unwrap_or(0) {
                b':' => (),
                b';' | 0 => return Ok(r),
                _ => return Err(Error::Parse),
            }
        }
    }

    fn policy(&mut self) -> crate::Result<Policy> {
        let p = match self.next_skip_whitespaces().unwrap_or(0) {
            b'n' | b'N' if self.match_bytes(b"one") => Policy::None,
            b'q' | b'Q' if self.match_bytes(b"uarantine") => Policy::Quarantine,
            b'r' | b'R' if self.match_bytes(b"eject") => Policy::Reject,
            _ => return Err(Error::Parse),
        };
        if self.seek_tag_end() {
            Ok(p)
        } else {
            Err(Error::Parse)
        }
    }

    #[allow(clippy::while_let_on_iterator)]
    fn uris(&mut self) -> crate::Result<Vec<Uri>> {
        let mut uris = Vec::new();
        let mut uri = Vec::with_capacity(16);
        let mut found_uri = false;
        let mut found_at = false;
        let mut size: usize = 0;

        'outer: while let Some(&ch) = self.next() {
            match ch {
                b'%' => {
                    let mut hex1 = 0;

                    while let Some(&ch) = self.next() {
                        if ch.is_ascii_hexdigit() {
                            if hex1 != 0 {
                                if let Some(ch) = decode_pair(hex1, ch) {
                                    match ch {
                                        b'@' => {
                                            found_at = true;
                                            uri.push(ch);
                                        }
                                        _ => {
                                            if !ch.is_ascii_whitespace() {
                                                uri.push(ch);
                                            }
                                        }
                                    }
                                }
                                break;
                            } else {
                                hex1 = ch;
                            }
                        } else if ch == b';' {
                            break 'outer;
                        } else if !ch.is_ascii_whitespace() {
                            return Err(Error::Parse);
                        }
                    }
                }
                b'!' => {
                    let mut has_digits = false;
                    let mut has_units = false;

                    while let Some(&ch) = self.next() {
                        match ch {
                            b'0'..=b'9' if !has_units => {
                                size =
                                    (size.saturating_mul(10)).saturating_add((ch - b'0') as usize);
                                has_digits = true;
                            }
                            b'k' | b'K' if !has_units && has_digits => {
                                size = size.saturating_mul(1024);
                                has_units = true;
                            }
                            b'm' | b'M' if !has_units && has_digits => {
                                size = size.saturating_mul(1024 * 1024);
                                has_units = true;
                            }
                            b'g' | b'G' if !has_units && has_digits => {
                                size = size.saturating_mul(1024 * 1024 * 1024);
                                has_units = true;
                            }
                            b't' | b'T' if !has_units && has_digits => {
                                size = usize::try_from(
                                    (size as u64).saturating_mul(1024 * 1024 * 1024 * 1024),
                                )
                                .unwrap_or(usize::MAX);
                                has_units = true;
                            }
                            b';' => {
                                break 'outer;
                            }
                            b',' => {
                                if !uri.is_empty() {
                                    if found_uri && found_at {
                                        uris.push(Uri {
                                            uri: lowercase_uri(&uri),
                                            max_size: size,
                                        });
                                    }
                                    found_uri = false;
                                    found_at = false;
                                    uri.clear();
                                }
                                size = 0;
                                break;
                            }
                            _ => {
                                if !ch.is_ascii_whitespace() {
                                    return Err(Error::Parse);
                                }
                            }
                        }
                    }
                }
                b',' => {
                    if !uri.is_empty() {
                        if found_uri && found_at {
                            uris.push(Uri {
                                uri: lowercase_uri(&uri),
                                max_size: size,
                            });
                        }
                        found_uri = false;
                        found_at = false;
                        uri.clear();
                    }
                    size = 0;
                }
                b':' if !found_uri => {
                    found_uri = uri.eq_ignore_ascii_case(b"mailto");
                    uri.clear();
                }
                b';' => {
                    break;
                }
                b'@' => {
                    found_at = true;
                    uri.push(ch);
                }
                _ => {
                    if !ch.is_ascii_whitespace() {
                        uri.push(ch);
                        let rest = self.as_slice();
                        let table = if found_uri {
                            &URI_STOP_AFTER_SCHEME
                        } else {
                            &URI_STOP
                        };
                        let run_end = rest
                            .iter()
                            .position(|&ch| table[ch as usize])
                            .unwrap_or(rest.len());
                        if run_end != 0 {
                            uri.extend_from_slice(rest.get(..run_end).unwrap_or_default());
                            *self = rest.get(run_end..).unwrap_or_default().iter();
                        }
                    }
                }
            }
        }

        if !uri.is_empty() && found_uri && found_at {
            uris.push(Uri {
                uri: lowercase_uri(&uri),
                max_size: size,
            })
        }

        Ok(uris)
    }
}

const URI_STOP: [bool; 256] = uri_stop_table(true);
const URI_STOP_AFTER_SCHEME: [bool; 256] = uri_stop_table(false);

const fn uri_stop_table(stop_colon: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut ch = 0usize;
    while ch < 256 {
        table[ch] = matches!(
            ch as u8,
            b'%' | b'!' | b',' | b';' | b'@' | b'\t' | b'\n' | b'\x0C' | b'\r' | b' '
        ) || (stop_colon && ch as u8 == b':');
        ch += 1;
    }
    table
}

fn lowercase_uri(uri: &[u8]) -> String {
    let mut value = to_str_lossy(uri).into_owned();
    if value.is_ascii() {
        value.make_ascii_lowercase();
        value
    } else {
        value.to_lowercase()
    }
}

const ADKIM: u64 = (b'a' as u64)
    | ((b'd' as u64) << 8)
    | ((b'k' as u64) << 16)
    | ((b'i' as u64) << 24)
    | ((b'm' as u64) << 32);
const ASPF: u64 =
    (b'a' as u64) | ((b's' as u64) << 8) | ((b'p' as u64) << 16) | ((b'f' as u64) << 24);
const FO: u64 = (b'f' as u64) | ((b'o' as u64) << 8);
const NP: u64 = (b'n' as u64) | ((b'p' as u64) << 8);
const P: u64 = b'p' as u64;
const RUA: u64 = (b'r' as u64) | ((b'u' as u64) << 8) | ((b'a' as u64) << 16);
const RUF: u64 = (b'r' as u64) | ((b'u' as u64) << 8) | ((b'f' as u64) << 16);
const SP: u64 = (b's' as u64) | ((b'p' as u64) << 8);
const PSD: u64 = (b'p' as u64) | ((b's' as u64) << 8) | ((b'd' as u64) << 16);

#[cfg(test)]
mod test {
    use crate::{
        dmarc::{Alignment, DmarcRecord, FailureOptions, Policy, Psd, Uri},
        parse::TxtRecordParser,
    };

    #[test]
    fn parse_dmarc() {
        for (record, expected_result) in [
            (
                "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com",
                DmarcRecord {
                    adkim: Alignment::Relaxed,
                    aspf: Alignment::Relaxed,
                    fo: FailureOptions::All,
                    np: Policy::None,
                    p: Policy::None,
                    rua: vec![Uri::new("dmarc-feedback@example.com", 0)],
                    ruf: vec![],
                    sp: Policy::None,
                    psd: Psd::Default,
                    t: false,
                },
            ),
            (
                concat!(
                    "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com;",
                    "ruf=mailto:auth-reports@example.com"
                ),
                DmarcRecord {
                    adkim: Alignment::Relaxed,
                    aspf: Alignment::Relaxed,
                    fo: FailureOptions::All,
                    np: Policy::None,
                    p: Policy::None,
                    rua: vec![Uri::new("dmarc-feedback@example.com", 0)],
                    ruf: vec![Uri::new("auth-reports@example.com", 0)],
                    sp: Policy::None,
                    psd: Psd::Default,
                    t: false,
                },
            ),
            (
                concat!(
                    "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,",
                    "mailto:tld-test@thirdparty.example.net!10m; pct=25; fo=d:s"
                ),
                DmarcRecord {
                    adkim: Alignment::Relaxed,
                    aspf: Alignment::Relaxed,
                    fo: FailureOptions::DkimSpf,
                    np: Policy::Quarantine,
                    p: Policy::Quarantine,
                    ruf: vec![],
                    rua: vec![
                        Uri::new("dmarc-feedback@example.com", 0),
                        Uri::new("tld-test@thirdparty.example.net", 10 * 1024 * 1024),
                    ],
                    sp: Policy::Quarantine,
                    psd: Psd::Default,
                    t: false,
                },
            ),
            (
                concat!(
                    "v=DMARC1; p=reject; sp=quarantine; np=None; aspf=s; adkim=s; fo = 1;",
                    "rua=mailto:dmarc-feedback@example.com"
                ),
                DmarcRecord {
                    adkim: Alignment::Strict,
                    aspf: Alignment::Strict,
                    fo: FailureOptions::Any,
                    np: Policy::None,
                    p: Policy::Reject,
                    rua: vec![Uri::new("dmarc-feedback@example.com", 0)],
                    ruf: vec![],
                    sp: Policy::Quarantine,
                    psd: Psd::Default,
                    t: false,
                },
            ),
            (
                concat!(
                    "v=DMARC1; p=reject; ri = 3600; aspf=r; adkim =r; ",
                    "rua=mailto:dmarc-feedback@example.com!10 K , mailto:user%20@example.com ! 2G;",
                    "ignore_me= true; fo=s; rf = AfrF; ",
                ),
                DmarcRecord {
                    adkim: Alignment::Relaxed,
                    aspf: Alignment::Relaxed,
                    fo: FailureOptions::Spf,
                    np: Policy::Reject,
                    p: Policy::Reject,
                    rua: vec![
                        Uri::new("dmarc-feedback@example.com", 10 * 1024),
                        Uri::new("user@example.com", 2 * 1024 * 1024 * 1024),
                    ],
                    ruf: vec![],
                    sp: Policy::Reject,
                    psd: Psd::Default,
                    t: false,
                },
            ),
            (
                concat!(
                    "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,",
                    "mailto:tld-test@thirdparty.example.net; fo=s:d; t=y; psd=y;;",
                ),
                DmarcRecord {
                    adkim: Alignment::Relaxed,
                    aspf: Alignment::Relaxed,
                    fo: FailureOptions::DkimSpf,
                    np: Policy::Quarantine,
                    p: Policy::Quarantine,
                    rua: vec![
                        Uri::new("dmarc-feedback@example.com", 0),
                        Uri::new("tld-test@thirdparty.example.net", 0),
                    ],
                    ruf: vec![],
                    sp: Policy::Quarantine,
                    psd: Psd::Yes,
                    t: true,
                },
            ),
        ] {
            assert_eq!(
                DmarcRecord::parse(record.as_bytes())
                    .unwrap_or_else(|err| panic!("{record:?} : {err:?}")),
                expected_result,
                "{record}"
            );
        }
    }
}
