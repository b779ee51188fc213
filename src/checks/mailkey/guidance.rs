//! The mailkey check's guidance: what the sender publishes or signs.

use super::MAX_SIGNED_FIELDS;
use crate::checks::{Failure, Guidance, Sender};
use crate::protocol::owner_name;

pub(super) const GUIDANCE: Guidance = Guidance {
    keys: &["no_key", "no_signature", "bad_signature"],
    key: |failure| match failure {
        Failure::NoKey | Failure::BadKey => Some("no_key"),
        Failure::NoSignature | Failure::RefusedSignature => Some("no_signature"),
        Failure::BodyChanged | Failure::BadSignature => Some("bad_signature"),
        _ => None,
    },
    text: lines,
};

/// The built-in guidance for a mailkey failure.
fn lines(failure: Failure, s: &Sender<'_>) -> Vec<String> {
    let d = s.domain_or_placeholder();
    let key = owner_name(d);
    match failure {
        Failure::NoKey => vec![
            format!("{d} publishes no mailkey. To publish one and sign with it:"),
            format!("1. run: mailkey-milter keygen --domain {d} --out /etc/mailkey"),
            format!("2. publish the printed TXT record at {key}"),
            "3. sign outgoing mail with selector \"mailkey\" ([signing] of mailkey-milter, \
             or any DKIM signer)."
                .into(),
        ],
        Failure::BadKey => vec![
            format!("The TXT record at {key} holds no usable key. Replace it:"),
            format!(
                "run: mailkey-milter keygen --domain {d} --out /etc/mailkey and publish \
                 the printed record."
            ),
        ],
        Failure::NoSignature => vec![
            format!("{d} publishes a mailkey, but this message has no mailkey signature."),
            format!(
                "Sign outgoing mail with selector \"mailkey\" and d={d}, with the key \
                 published at {key}:"
            ),
            format!(
                "mailkey-milter: [signing] domains = [{{ domain = \"{d}\", key_file = \
                 \"/etc/mailkey/{d}.ed25519.pem\" }}] (or any DKIM signer)."
            ),
        ],
        Failure::RefusedSignature => vec![
            format!(
                "The mailkey signature of {d} is one this receiver refuses (the reason is above)."
            ),
            format!(
                "Sign with the key at {key}: a=ed25519-sha256 or rsa-sha256, without l=, \
                 covering From,"
            ),
            format!(
                "with at most {MAX_SIGNED_FIELDS} h= entries and no x= in the past \
                 (mailkey-milter [signing] signs so)."
            ),
        ],
        Failure::BodyChanged => vec![
            format!(
                "The body was changed after signing (a footer or a filter), so the \
                 signature of {d} no longer matches."
            ),
            format!("Sign last, with the key at {key}: add footers and run filters before it."),
        ],
        Failure::BadSignature => vec![
            format!(
                "The signature of {d} does not verify: signed headers were changed after \
                 signing, or the key is not the one at {key}."
            ),
            format!("Sign last, with the private key of the record published at {key}."),
        ],
        _ => Vec::new(),
    }
}
