//! Explaining the problems of the validity period: `exp`, `nbf` and `iat`.

use std::fmt::Write as _;

use crate::clock::MAX_LEEWAY;
use crate::pipeline::view::numeric_date;
use crate::Reason;

use super::explain::Cx;
use super::time::{human, utc};
use super::Finding;

pub(super) fn expired(cx: &Cx<'_>) -> Finding {
    let Some(exp) = cx.claim("exp").and_then(numeric_date) else {
        return Finding::new(
            Reason::Expired,
            "exp",
            "the token has expired",
            "refresh the token",
        );
    };
    let ago = cx.now - exp;
    let skew = ago < MAX_LEEWAY.as_secs() as i64;
    let mut facts = format!(
        "expired {} ago, at {} (checked at {}, leeway {} s)",
        human(ago),
        utc(exp),
        utc(cx.now),
        cx.view.leeway()
    );
    if let Some(iat) = cx.claim("iat").and_then(numeric_date) {
        if iat <= exp {
            let _ = write!(
                facts,
                "; it was issued at {}, valid for {}",
                utc(iat),
                human(exp - iat)
            );
        }
    }
    let mut hint = "refresh the token: get a new one with the refresh token or by logging in \
                    again, before `exp`"
        .to_owned();
    if skew {
        let _ = write!(
            facts,
            ". That is only {} past the leeway: if the token was fresh when sent, the clocks of \
             the issuer and this server are not synchronised",
            human((ago - cx.view.leeway()).max(0))
        );
        let _ = write!(
            hint,
            "; if fresh tokens fail, synchronise the clocks (NTP) or raise {}",
            cx.leeway_text()
        );
    }
    Finding::new(Reason::Expired, "exp", facts, hint)
        .with("exp", exp)
        .with("exp_utc", utc(exp))
        .with("expired_secs", ago)
        .with("leeway_secs", cx.view.leeway())
        .with("checked_at", cx.now)
        .with("clock_skew_suspected", skew)
}

pub(super) fn not_yet_valid(cx: &Cx<'_>) -> Finding {
    let Some(nbf) = cx.claim("nbf").and_then(numeric_date) else {
        return Finding::new(Reason::NotYetValid, "nbf", "the token is not valid yet", "");
    };
    let ahead = nbf - cx.now;
    let skew = ahead <= MAX_LEEWAY.as_secs() as i64;
    let mut facts = format!(
        "not valid before {}, {} from now (checked at {}, leeway {} s)",
        utc(nbf),
        human(ahead),
        utc(cx.now),
        cx.view.leeway()
    );
    if let Some(iat) = cx.claim("iat").and_then(numeric_date) {
        if iat > cx.now {
            let _ = write!(
                facts,
                "; `iat` is {} in the future too",
                human(iat - cx.now)
            );
        }
    }
    let hint = if skew {
        let _ = write!(
            facts,
            ": a gap this small means the clocks of the issuer and this server are not \
             synchronised (this server is behind)"
        );
        format!(
            "synchronise the clocks of this server and the issuer (NTP), or raise {}",
            cx.leeway_text()
        )
    } else {
        format!(
            "the token is post-dated, or the issuer's clock is far ahead: use it after {}, or \
             fix the issuer's clock",
            utc(nbf)
        )
    };
    Finding::new(Reason::NotYetValid, "nbf", facts, hint)
        .with("nbf", nbf)
        .with("nbf_utc", utc(nbf))
        .with("starts_in_secs", ahead)
        .with("leeway_secs", cx.view.leeway())
        .with("checked_at", cx.now)
        .with("clock_skew_suspected", skew)
}

pub(super) fn iat_warning(cx: &Cx<'_>) -> Option<Finding> {
    let iat = cx.claim("iat").and_then(numeric_date)?;
    let ahead = iat - cx.now;
    if ahead <= cx.view.leeway() {
        return None;
    }
    Some(
        Finding::new(
            Reason::NotYetValid,
            "iat",
            format!(
                "`iat` is {} in the future ({}): the issuer's clock is ahead of this server's",
                human(ahead),
                utc(iat)
            ),
            format!(
                "synchronise the clocks (NTP); tokens will fail `nbf` checks or expire early \
                 otherwise, or raise {}",
                cx.leeway_text()
            ),
        )
        .with("iat", iat)
        .with("ahead_secs", ahead),
    )
}
