//! Diagnosis: every problem of a token, with facts and a hint for the fix.
//!
//! A rejection response names one [`Reason`] and says nothing about the token, on purpose.
//! While developing, [`diagnose`] tells everything: it decodes the header and claims (never the
//! signature), runs the exact checks of the configuration, and explains **every** problem as a
//! [`Finding`]: its reason code, the facts (`expired 5 min 12 s ago, at 2023-11-14 22:08:08
//! UTC`; `` `aud` is `api://billing`, expected one of `api://orders` ``; `` `kid` `k9` is not in
//! the key set, which has `k1`, `k2` ``) and a hint naming the fix. It also recognises what
//! people paste by mistake: an opaque token, an encrypted token (JWE), base64 padding,
//! surrounding quotes, `Bearer` twice, line breaks, a whole token response.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use tower_token_auth::diagnose::diagnose;
//! use tower_token_auth::testing::TestKey;
//! use tower_token_auth::{AuthConfig, Reason};
//!
//! let key = TestKey::hs256();
//! let cfg = AuthConfig::builder()
//!     .keys(key.keys())
//!     .issuer("https://issuer.example")
//!     .audience("api://orders")
//!     .build()
//!     .unwrap();
//! let token = key
//!     .token()
//!     .issuer("https://issuer.example")
//!     .audience("api://billing")
//!     .expired_for(Duration::from_secs(312))
//!     .sign();
//!
//! let diagnosis = diagnose(&token, &cfg).await;
//! assert!(!diagnosis.is_valid());
//! assert_eq!(diagnosis.reason(), Some(Reason::Expired)); // what the service answers
//! assert!(diagnosis.has(Reason::WrongAudience)); // and everything else that is wrong
//! assert!(diagnosis.finding(Reason::Expired).unwrap().facts().contains("5 min 12 s ago"));
//! println!("{diagnosis}"); // a readable report; serde_json gives the same as JSON
//! # }
//! ```
//!
//! The diagnosis holds the decoded header and claims of the token: show it to the token's
//! owner (a developer, a support tool), not to arbitrary clients. It never holds the signature
//! or key material.
//!
//! The `doctor` example is a command-line front end:
//! `cargo run --example doctor -- <token> --secret-file secret.bin --aud api://orders`.

use std::fmt::{self, Write as _};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::StatusCode;
use jsonwebtoken::Algorithm;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::config::{AuthConfig, ConfigInner, Trust, MAX_LEEWAY};
use crate::error::{AuthError, Problem, Reason};
use crate::keys::{KeyInfo, KeySource};
use crate::validate::numeric_date;

/// Diagnoses `token` against `config`: every problem, with facts and a fix.
///
/// Runs exactly the checks the layer runs (remote keys are fetched if needed), so
/// [`Diagnosis::reason`] is the reason the service would answer with; then explains each
/// problem. Never fails: a string that is not a token at all gets a diagnosis saying so.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_token_auth::diagnose::diagnose;
/// use tower_token_auth::{AuthConfig, Keys, Reason};
///
/// let cfg = AuthConfig::builder()
///     .keys(Keys::hmac(b"0123456789abcdef0123456789abcdef"))
///     .issuer("https://issuer.example")
///     .audience("api")
///     .build()
///     .unwrap();
/// let d = diagnose("\"Bearer 2YotnFZFEjr1zCsicMWpAA\"", &cfg).await;
/// assert_eq!(d.reason(), Some(Reason::Malformed));
/// let subjects: Vec<_> = d.findings().iter().filter_map(|f| f.subject()).collect();
/// assert_eq!(subjects, ["bearer", "quotes", "opaque"]);
/// # }
/// ```
pub async fn diagnose(token: &str, config: &AuthConfig) -> Diagnosis {
    diagnose_with(token, config, &DiagnoseOptions::default()).await
}

/// Like [`diagnose`], with options: e.g. the scopes the resource requires.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_token_auth::diagnose::{diagnose_with, DiagnoseOptions};
/// use tower_token_auth::testing::TestKey;
/// use tower_token_auth::{AuthConfig, Reason};
///
/// let key = TestKey::hs256();
/// let cfg = AuthConfig::builder().keys(key.keys()).issuer("https://i").audience("api").build().unwrap();
/// let token = key.token().issuer("https://i").audience("api").scope("orders:read").sign();
///
/// let options = DiagnoseOptions::new().require_scope("orders:write");
/// let d = diagnose_with(&token, &cfg, &options).await;
/// assert_eq!(d.reason(), Some(Reason::InsufficientScope));
/// assert_eq!(d.status(), Some(http::StatusCode::FORBIDDEN));
/// # }
/// ```
pub async fn diagnose_with(
    token: &str,
    config: &AuthConfig,
    options: &DiagnoseOptions,
) -> Diagnosis {
    let cfg: &ConfigInner = &config.inner;
    let input = inspect_input(token);

    // What the service would answer for the text as sent, and the problems of the repaired
    // token (the same text when nothing needed repairing).
    let clean_result = match &input.clean {
        Some(clean) => Some(crate::validate::validate(cfg, clean).await),
        None => None,
    };
    let sent_error: Option<AuthError> = if input.defects.is_empty() {
        clean_result
            .as_ref()
            .and_then(|r| r.as_ref().err().cloned())
    } else {
        Some(
            crate::validate::validate(cfg, &input.sent)
                .await
                .err()
                .unwrap_or_else(|| AuthError::new(Reason::Malformed)),
        )
    };
    // Read after validation: remote keys are loaded by now.
    let now = cfg.clock.now();

    let (header, claims) = decode_parts(&input.text);
    let iss = claims
        .as_ref()
        .and_then(|c| c.get("iss"))
        .and_then(Value::as_str);
    let trust = select_trust(cfg, iss);
    let keys = trust.map(|t| t.keys.describe()).unwrap_or_default();
    let kind = match (&header, &claims) {
        (Some(h), Some(c)) => token_kind(h, c),
        _ => None,
    };
    let cx = Cx {
        cfg,
        now,
        text: &input.text,
        header: header.as_ref(),
        claims: claims.as_ref(),
        trust,
        keys: &keys,
        remote: trust.and_then(|t| remote_status(&t.keys)),
        kind: kind.as_ref(),
    };

    let mut findings = input.defects;
    let mut warnings = Vec::new();
    let mut notes = input.notes;

    let clean_error = clean_result.as_ref().and_then(|r| r.as_ref().err());
    if let Some(err) = clean_error {
        for problem in err.problems() {
            findings.push(explain(&cx, problem, err));
        }
    }
    if !options.required_scopes.is_empty() {
        if let Some(f) = scope_finding(&cx, &options.required_scopes) {
            findings.push(f);
        }
    }
    // The reason the service answers: that of the text as sent, else the most decisive of
    // the problems found so far (the token-kind finding below only explains them).
    let reason = match &sent_error {
        Some(e) => Some(e.reason()),
        None => findings
            .iter()
            .map(|f| f.reason)
            .min_by_key(|r| r.precedence()),
    };
    if let Some(kind) = &kind {
        let reported = findings.iter().any(|f| f.reason == Reason::WrongType);
        if !reported {
            if findings.is_empty() {
                warnings.push(kind_finding(kind));
            } else {
                findings.push(kind_finding(kind));
            }
        }
    }
    if let Some(w) = iat_warning(&cx) {
        let covered = findings
            .iter()
            .any(|f| f.reason == Reason::NotYetValid || f.subject.as_deref() == Some("iat"));
        if !covered {
            warnings.push(w);
        }
    }
    findings.sort_by_key(|f| f.reason.precedence());

    let unverified = |r: Reason| {
        matches!(
            r,
            Reason::TooLarge
                | Reason::Malformed
                | Reason::AlgNotAllowed
                | Reason::UnknownKey
                | Reason::BadSignature
                | Reason::KeysUnavailable
        )
    };
    let signature_verified = match &clean_result {
        Some(Ok(_)) => true,
        Some(Err(e)) => trust.is_some() && !e.problems().iter().any(|p| unverified(p.reason())),
        None => false,
    };

    if !cfg.check_issuer {
        notes
            .push("the issuer check is off: `iss` was not compared with an expected issuer".into());
    }
    if !cfg.check_audience {
        notes.push(
            "the audience check is off: `aud` was not compared with an expected audience".into(),
        );
    }
    if clean_error.is_some_and(|e| e.reason() == Reason::KeysUnavailable) {
        notes.push(
            "no keys were available, so the signature and the claims were not checked".into(),
        );
    }
    if (header.is_some() || claims.is_some()) && !signature_verified {
        notes.push("the header and claims are shown as decoded: they are not verified".into());
    }

    let checked_against = CheckedAgainst {
        issuer_check: cfg.check_issuer,
        audience_check: cfg.check_audience,
        leeway_secs: cfg.leeway,
        required_type: cfg.required_type.clone(),
        required_claims: cfg.required_claims.clone(),
        required_scopes: options.required_scopes.clone(),
        trusts: cfg
            .trusts
            .iter()
            .map(|t| TrustView {
                issuers: t.issuers.clone(),
                audiences: t.audiences.clone(),
                key_source: remote_status(&t.keys).map(|s| s.source),
                keys: t.keys.describe(),
            })
            .collect(),
    };

    Diagnosis {
        valid: reason.is_none() && findings.is_empty(),
        status: reason.map(|r| r.status().as_u16()),
        reason,
        checked_at: now,
        checked_at_utc: utc(now),
        signature_verified,
        header,
        claims,
        findings,
        warnings,
        notes,
        checked_against,
    }
}

/// Options for [`diagnose_with`].
///
/// ```
/// use tower_token_auth::diagnose::DiagnoseOptions;
///
/// let options = DiagnoseOptions::new().require_scope("orders:read orders:write");
/// assert_eq!(options.required_scopes(), ["orders:read", "orders:write"]);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DiagnoseOptions {
    required_scopes: Vec<String>,
}

impl DiagnoseOptions {
    /// No options: the checks of the configuration only.
    pub fn new() -> Self {
        DiagnoseOptions::default()
    }

    /// Requires scopes (space-separated, like the `scope` claim): each must be granted by the
    /// `scope` or `scp` claim, or the diagnosis reports `insufficient_scope`.
    #[must_use]
    pub fn require_scope(mut self, scopes: impl AsRef<str>) -> Self {
        for s in scopes.as_ref().split_whitespace() {
            if !self.required_scopes.iter().any(|r| r == s) {
                self.required_scopes.push(s.to_owned());
            }
        }
        self
    }

    /// The scopes required so far.
    pub fn required_scopes(&self) -> &[String] {
        &self.required_scopes
    }
}

/// Everything wrong (or right) with a token: see the [module docs](self).
///
/// [`Display`](fmt::Display) gives a readable multi-line report (plain text);
/// [`to_ansi_string`](Diagnosis::to_ansi_string) the same with terminal colours; `Serialize`
/// gives JSON with the fields `valid`, `reason` (the code), `status`, `checked_at`,
/// `checked_at_utc`, `signature_verified`, `header`, `claims` (`null` when not decodable),
/// `findings`, `warnings`, `notes` and `checked_against` (issuers, audiences, key ids and
/// types, leeway: never key material).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_token_auth::diagnose::diagnose;
/// use tower_token_auth::testing::TestKey;
/// use tower_token_auth::AuthConfig;
///
/// let key = TestKey::hs256();
/// let cfg = AuthConfig::builder().keys(key.keys()).issuer("https://i").audience("api").build().unwrap();
/// let d = diagnose(&key.token().issuer("https://i").audience("api").sign(), &cfg).await;
/// assert!(d.is_valid());
/// assert_eq!(d.claims().unwrap()["aud"], "api");
/// let json = serde_json::to_value(&d).unwrap();
/// assert_eq!(json["valid"], true);
/// assert_eq!(json["reason"], serde_json::Value::Null);
/// # }
/// ```
#[derive(Clone, Debug, Serialize)]
pub struct Diagnosis {
    valid: bool,
    #[serde(serialize_with = "ser_opt_reason")]
    reason: Option<Reason>,
    status: Option<u16>,
    checked_at: i64,
    checked_at_utc: String,
    signature_verified: bool,
    header: Option<Map<String, Value>>,
    claims: Option<Map<String, Value>>,
    findings: Vec<Finding>,
    warnings: Vec<Finding>,
    notes: Vec<String>,
    checked_against: CheckedAgainst,
}

impl Diagnosis {
    /// `true` if the service would accept the token (and the required scopes are granted).
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// The reason the service would answer with, `None` for a valid token.
    pub fn reason(&self) -> Option<Reason> {
        self.reason
    }

    /// The status the service would answer with, `None` for a valid token.
    pub fn status(&self) -> Option<StatusCode> {
        self.reason.map(Reason::status)
    }

    /// The instant the token was checked against (seconds since the epoch, from the
    /// configuration's clock).
    pub fn checked_at(&self) -> i64 {
        self.checked_at
    }

    /// The decoded JOSE header, if the token has one that decodes to a JSON object.
    pub fn header(&self) -> Option<&Map<String, Value>> {
        self.header.as_ref()
    }

    /// The decoded claims, if the token has a payload that decodes to a JSON object (not for
    /// an encrypted token). Verified only if [`signature_verified`](Diagnosis::signature_verified).
    pub fn claims(&self) -> Option<&Map<String, Value>> {
        self.claims.as_ref()
    }

    /// `true` if a configured key verified the signature.
    pub fn signature_verified(&self) -> bool {
        self.signature_verified
    }

    /// Every problem found, most decisive first. Empty for a valid token.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The first finding with this reason.
    pub fn finding(&self, reason: Reason) -> Option<&Finding> {
        self.findings.iter().find(|f| f.reason == reason)
    }

    /// `true` if a finding has this reason.
    pub fn has(&self, reason: Reason) -> bool {
        self.finding(reason).is_some()
    }

    /// Things that do not make the service reject the token but deserve a look (e.g. an ID
    /// token accepted as an access token, an `iat` in the future).
    pub fn warnings(&self) -> &[Finding] {
        &self.warnings
    }

    /// Remarks about the diagnosis itself: checks that are off, input that was cleaned up
    /// (a `Bearer ` prefix, surrounding whitespace), claims that could not be verified.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The report of [`Display`](fmt::Display), coloured with ANSI escape codes for a
    /// terminal.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use tower_token_auth::{diagnose::diagnose, AuthConfig, Keys};
    /// # let cfg = AuthConfig::builder().keys(Keys::hmac([7u8; 32])).issuer("https://i").audience("a").build().unwrap();
    /// let d = diagnose("not-a-token", &cfg).await;
    /// assert!(d.to_ansi_string().contains("\u{1b}["));
    /// assert!(!d.to_string().contains('\u{1b}'));
    /// # }
    /// ```
    pub fn to_ansi_string(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.render(&mut out, true);
        out
    }

    fn render(&self, out: &mut impl fmt::Write, ansi: bool) -> fmt::Result {
        let st = Style(ansi);
        match self.reason {
            None if self.valid => {
                writeln!(out, "{} the token is accepted", st.paint("1;32", "VALID:"))?;
            }
            reason => {
                let reason = reason.unwrap_or(Reason::Malformed);
                let error = reason
                    .bearer_error()
                    .map(|e| format!(", {e}"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{} rejected as {} ({}{error})",
                    st.paint("1;31", "INVALID:"),
                    st.paint("1", reason.code()),
                    reason.status().as_u16(),
                )?;
            }
        }
        writeln!(
            out,
            "Checked at {} ({})",
            self.checked_at_utc, self.checked_at
        )?;

        writeln!(out)?;
        match &self.header {
            Some(h) => {
                writeln!(out, "{}", st.paint("1", "Header"))?;
                for (name, value) in h {
                    writeln!(out, "  {name}: {}", show_json(value, 200))?;
                }
            }
            None => writeln!(out, "{} not decodable", st.paint("1", "Header:"))?,
        }
        match &self.claims {
            Some(c) => {
                let title = if self.signature_verified {
                    "Claims"
                } else {
                    "Claims (not verified)"
                };
                writeln!(out, "{}", st.paint("1", title))?;
                for (name, value) in c {
                    write!(out, "  {name}: {}", show_json(value, 200))?;
                    if matches!(name.as_str(), "exp" | "nbf" | "iat" | "auth_time") {
                        if let Some(t) = numeric_date(value) {
                            write!(
                                out,
                                "  {}",
                                st.paint(
                                    "2",
                                    &format!("({}, {})", utc(t), relative(t, self.checked_at))
                                )
                            )?;
                        }
                    }
                    writeln!(out)?;
                }
            }
            None => writeln!(out, "{} not decodable", st.paint("1", "Claims:"))?,
        }

        writeln!(out)?;
        if self.findings.is_empty() {
            writeln!(out, "{}", st.paint("1;32", "No problems found"))?;
        } else {
            let n = self.findings.len();
            let title = if n == 1 {
                "1 problem".to_owned()
            } else {
                format!("{n} problems")
            };
            writeln!(out, "{}", st.paint("1;31", &title))?;
            for (i, f) in self.findings.iter().enumerate() {
                render_finding(out, &st, &format!("{}.", i + 1), f, "31")?;
            }
        }
        if !self.warnings.is_empty() {
            writeln!(out)?;
            writeln!(out, "{}", st.paint("1;33", "Warnings"))?;
            for f in &self.warnings {
                render_finding(out, &st, "-", f, "33")?;
            }
        }
        if !self.notes.is_empty() {
            writeln!(out)?;
            writeln!(out, "{}", st.paint("1", "Notes"))?;
            for n in &self.notes {
                writeln!(out, "  - {n}")?;
            }
        }

        let c = &self.checked_against;
        writeln!(out)?;
        writeln!(out, "{}", st.paint("1", "Checked against"))?;
        for t in &c.trusts {
            let issuers = if !c.issuer_check {
                "(not checked)".to_owned()
            } else if t.issuers.is_empty() {
                "(none)".to_owned()
            } else {
                list(&t.issuers)
            };
            writeln!(out, "  issuer: {issuers}")?;
            let audiences = if c.audience_check {
                list(&t.audiences)
            } else {
                "(not checked)".to_owned()
            };
            writeln!(out, "    audience: {audiences}")?;
            if let Some(src) = &t.key_source {
                writeln!(out, "    key source: {src}")?;
            }
            if t.keys.is_empty() {
                writeln!(out, "    keys: (none loaded)")?;
            }
            for k in &t.keys {
                let algs: Vec<String> = k.algorithms.iter().map(|a| format!("{a:?}")).collect();
                let kid = k
                    .kid
                    .as_deref()
                    .map(|k| format!("`{k}`"))
                    .unwrap_or_else(|| "(no kid)".into());
                writeln!(out, "    key: {kid} {} ({})", k.kind, algs.join(", "))?;
            }
        }
        writeln!(out, "  leeway: {} s", c.leeway_secs)?;
        if let Some(t) = &c.required_type {
            writeln!(out, "  required type: {t}")?;
        }
        if !c.required_claims.is_empty() {
            writeln!(out, "  required claims: {}", list(&c.required_claims))?;
        }
        if !c.required_scopes.is_empty() {
            writeln!(out, "  required scopes: {}", list(&c.required_scopes))?;
        }
        Ok(())
    }
}

fn render_finding(
    out: &mut impl fmt::Write,
    st: &Style,
    bullet: &str,
    f: &Finding,
    colour: &str,
) -> fmt::Result {
    let subject = f
        .subject
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    writeln!(
        out,
        "  {bullet} {}{subject}",
        st.paint(&format!("1;{colour}"), f.reason.code())
    )?;
    writeln!(out, "     {}", f.facts)?;
    if !f.hint.is_empty() {
        writeln!(out, "     {} {}", st.paint("1;36", "Fix:"), f.hint)?;
    }
    Ok(())
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f, false)
    }
}

/// One problem of a token: its reason, what it concerns, the facts and the fix.
///
/// Serialized as `{"reason": "<code>", "subject": …, "facts": "…", "fields": {…}, "hint": "…"}`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_token_auth::diagnose::diagnose;
/// use tower_token_auth::testing::TestKey;
/// use tower_token_auth::{AuthConfig, Reason};
///
/// let key = TestKey::hs256();
/// let cfg = AuthConfig::builder().keys(key.keys()).issuer("https://i").audience("api://orders").build().unwrap();
/// let token = key.token().issuer("https://i").audience("api://orders/").sign();
/// let d = diagnose(&token, &cfg).await;
/// let f = d.finding(Reason::WrongAudience).unwrap();
/// assert_eq!(f.subject(), Some("aud"));
/// assert!(f.facts().contains("trailing slash"));
/// assert_eq!(f.field("expected").unwrap()[0], "api://orders");
/// assert!(f.hint().contains(".audience("));
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    #[serde(serialize_with = "ser_reason")]
    reason: Reason,
    subject: Option<String>,
    facts: String,
    fields: Map<String, Value>,
    hint: String,
}

impl Finding {
    fn new(
        reason: Reason,
        subject: &str,
        facts: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Finding {
            reason,
            subject: (!subject.is_empty()).then(|| subject.to_owned()),
            facts: facts.into(),
            fields: Map::new(),
            hint: hint.into(),
        }
    }

    fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(name.to_owned(), value.into());
        self
    }

    /// The reason code of this problem.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// What the problem concerns: a claim or header parameter (`"exp"`, `"aud"`, `"kid"`,
    /// `"typ"`), or a short label for input and shape problems (`"opaque"`, `"jwe"`,
    /// `"quotes"`, `"bearer"`, `"whitespace"`, `"padding"`, `"json"`, `"segments"`,
    /// `"scope"`, `"token kind"`…).
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The facts, as a sentence for people.
    pub fn facts(&self) -> &str {
        &self.facts
    }

    /// The facts as structured fields (e.g. `exp`, `expired_secs`, `expected`, `actual`,
    /// `known_kids`), for tools.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// One structured field.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    /// What to do about it.
    pub fn hint(&self) -> &str {
        &self.hint
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason.code())?;
        if let Some(s) = &self.subject {
            write!(f, " ({s})")?;
        }
        write!(f, ": {}", self.facts)?;
        if !self.hint.is_empty() {
            write!(f, " Fix: {}", self.hint)?;
        }
        Ok(())
    }
}

/// What the token was checked against (never key material).
#[derive(Clone, Debug, Serialize)]
struct CheckedAgainst {
    issuer_check: bool,
    audience_check: bool,
    leeway_secs: i64,
    required_type: Option<String>,
    required_claims: Vec<String>,
    required_scopes: Vec<String>,
    trusts: Vec<TrustView>,
}

#[derive(Clone, Debug, Serialize)]
struct TrustView {
    issuers: Vec<String>,
    audiences: Vec<String>,
    key_source: Option<String>,
    keys: Vec<KeyInfo>,
}

fn ser_reason<S: Serializer>(reason: &Reason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(reason.code())
}

fn ser_opt_reason<S: Serializer>(reason: &Option<Reason>, s: S) -> Result<S::Ok, S::Error> {
    match reason {
        Some(r) => s.serialize_str(r.code()),
        None => s.serialize_none(),
    }
}

struct Style(bool);

impl Style {
    fn paint(&self, codes: &str, text: &str) -> String {
        if self.0 {
            format!("\u{1b}[{codes}m{text}\u{1b}[0m")
        } else {
            text.to_owned()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Input: what was pasted, what a server would receive, and the token inside.

struct Input {
    /// What a server would receive as the token (after the scheme).
    sent: String,
    /// The token with paste defects repaired, if it can be checked.
    clean: Option<String>,
    /// The best text to decode the header and claims from.
    text: String,
    defects: Vec<Finding>,
    notes: Vec<String>,
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `Bearer <rest>` → `<rest>` (scheme case-insensitive, one or more spaces).
fn strip_scheme(s: &str) -> Option<&str> {
    let rest = strip_prefix_ci(s, "bearer")?;
    let trimmed = rest.trim_start();
    (trimmed.len() < rest.len() && !trimmed.is_empty()).then_some(trimmed)
}

fn strip_quotes(s: &str) -> Option<&str> {
    for q in ['"', '\'', '`'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return Some(&s[1..s.len() - 1]);
        }
    }
    None
}

const INVISIBLE: [char; 6] = [
    '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{00AD}',
];

fn inspect_input(raw: &str) -> Input {
    let mut notes = Vec::new();
    let mut defects = Vec::new();

    let trimmed = raw.trim();
    if trimmed.len() != raw.len() && !trimmed.is_empty() {
        notes.push("surrounding whitespace was removed (servers trim it too)".to_owned());
    }
    let mut s = trimmed;
    if let Some(rest) = strip_prefix_ci(s, "authorization:") {
        notes.push("the `Authorization:` header name was removed".to_owned());
        s = rest.trim_start();
    }
    if let Some(rest) = strip_scheme(s) {
        notes.push("the `Bearer ` scheme was removed: the rest is the token".to_owned());
        s = rest;
    }
    let sent = s.to_owned();

    let mut cur = s.to_owned();
    let (mut quoted, mut bearers) = (false, 0);
    loop {
        if let Some(inner) = strip_quotes(&cur) {
            quoted = true;
            cur = inner.trim().to_owned();
        } else if let Some(rest) = strip_scheme(&cur) {
            bearers += 1;
            cur = rest.to_owned();
        } else {
            break;
        }
    }
    if bearers > 0 {
        defects.push(
            Finding::new(
                Reason::Malformed,
                "bearer",
                "`Bearer` appears twice: the token text itself starts with `Bearer `, so the \
                 request carries `Authorization: Bearer Bearer …`",
                "send the scheme once: `Authorization: Bearer <token>`; the client adds \
                 `Bearer ` to a value that already has it, so store and pass the bare token",
            )
            .with("extra_schemes", bearers),
        );
    }
    if quoted {
        defects.push(Finding::new(
            Reason::Malformed,
            "quotes",
            "the token is wrapped in quotes; a server receives them as part of the token",
            "remove the quotes (they come from copying a JSON string, a shell variable or a \
             config file value)",
        ));
    }

    let mut clean_ok = true;
    if cur.is_empty() {
        defects.push(Finding::new(
            Reason::Malformed,
            "empty",
            "the token is empty",
            "pass the token itself",
        ));
        return Input {
            sent,
            clean: None,
            text: String::new(),
            defects,
            notes,
        };
    }

    if cur.starts_with('{') {
        let (finding, inner) = pasted_json(&cur);
        defects.push(finding);
        match inner {
            Some(token) => {
                notes.push(
                    "the findings after the pasted JSON are about the token it holds".to_owned(),
                );
                cur = token;
            }
            None => {
                return Input {
                    sent,
                    clean: None,
                    text: String::new(),
                    defects,
                    notes,
                }
            }
        }
    }

    if cur.chars().any(char::is_whitespace) {
        let breaks = cur.chars().filter(|c| *c == '\n' || *c == '\r').count();
        let others = cur
            .chars()
            .filter(|c| c.is_whitespace() && *c != '\n' && *c != '\r')
            .count();
        let first = cur.chars().position(char::is_whitespace).unwrap_or(0);
        defects.push(
            Finding::new(
                Reason::Malformed,
                "whitespace",
                format!(
                    "the token contains {breaks} line break(s) and {others} space(s) or tab(s), \
                     the first at character {}: it was wrapped or split when copied",
                    first + 1
                ),
                "remove them: a JWT is one line without spaces (look at how the token is \
                 printed, copied or stored: a wrapping base64 tool, a terminal, a YAML block)",
            )
            .with("line_breaks", breaks)
            .with("spaces", others),
        );
        cur.retain(|c| !c.is_whitespace());
    }
    if cur.contains(INVISIBLE) {
        defects.push(Finding::new(
            Reason::Malformed,
            "invisible",
            "the token contains invisible characters (zero-width space, byte-order mark or \
             soft hyphen)",
            "copy the token from its source again, not from a document or chat that adds them",
        ));
        cur.retain(|c| !INVISIBLE.contains(&c));
    }
    if cur.contains('…') || cur.contains("...") {
        defects.push(Finding::new(
            Reason::Malformed,
            "truncated",
            "the token contains `…`: it was shortened for display and copied that way",
            "copy the whole token from its source, not from a log line or a screen that \
             abbreviates it",
        ));
        clean_ok = false;
        cur = cur.replace('…', "").replace("...", "");
    }
    if cur.contains('%') {
        if let Some(decoded) = percent_decode(&cur) {
            defects.push(Finding::new(
                Reason::Malformed,
                "percent-encoded",
                "the token is URL-encoded (`%XX` escapes)",
                "decode it before sending it in a header; only query parameters are URL-encoded",
            ));
            cur = decoded;
        }
    }
    let segments: Vec<&str> = cur.split('.').collect();
    let padded: Vec<&str> = segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.ends_with('='))
        .map(|(i, _)| segment_name(i, segments.len()))
        .collect();
    if !padded.is_empty() {
        defects.push(
            Finding::new(
                Reason::Malformed,
                "padding",
                format!(
                    "the {} segment(s) end with base64 padding `=`; JWT segments are unpadded \
                     base64url (RFC 7515 §2)",
                    padded.join(", ")
                ),
                "remove the trailing `=`; if the issuer emits them, fix its encoder (base64url \
                 without padding): a signature computed over padded segments does not verify \
                 once the padding is removed",
            )
            .with("segments", padded.clone()),
        );
        cur = segments
            .iter()
            .map(|s| s.trim_end_matches('='))
            .collect::<Vec<_>>()
            .join(".");
    }
    if cur.contains('+') || cur.contains('/') {
        defects.push(Finding::new(
            Reason::Malformed,
            "base64",
            "the token contains `+` or `/`: standard base64, where a JWT uses base64url (`-` \
             and `_`)",
            "encode the segments with the URL-safe alphabet (base64url, RFC 4648 §5)",
        ));
        cur = cur.replace('+', "-").replace('/', "_");
    }
    if let Some((i, c)) = cur
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        defects.push(
            Finding::new(
                Reason::Malformed,
                "characters",
                format!(
                    "character {:?} (U+{:04X}) at position {} cannot appear in a JWT, which \
                     holds only base64url characters and `.`",
                    c,
                    c as u32,
                    i + 1
                ),
                "the text is not a JWT, or it was altered when copied: copy it from its \
                 source again",
            )
            .with("position", i + 1),
        );
        clean_ok = false;
    }
    Input {
        sent,
        clean: clean_ok.then(|| cur.clone()),
        text: cur,
        defects,
        notes,
    }
}

fn segment_name(i: usize, n: usize) -> &'static str {
    match (n, i) {
        (3, 0) | (5, 0) => "header",
        (3, 1) => "payload",
        (3, 2) => "signature",
        (_, 0) => "first",
        (_, 1) => "second",
        (_, 2) => "third",
        (_, 3) => "fourth",
        _ => "fifth or later",
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut any = false;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
            any = true;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    any.then(|| String::from_utf8(out).ok()).flatten()
}

/// A JSON object pasted instead of a token: what it is and the token it holds, if any.
fn pasted_json(text: &str) -> (Finding, Option<String>) {
    let obj =
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            _ => return (
                Finding::new(
                    Reason::Malformed,
                    "json",
                    "the text starts with `{`: JSON (or a fragment of it) was pasted, not a token",
                    "paste the encoded token (`xxxxx.yyyyy.zzzzz`)",
                ),
                None,
            ),
        };
    let members: Vec<Value> = obj
        .keys()
        .take(20)
        .map(|k| Value::from(k.as_str()))
        .collect();
    for (field, what) in [("access_token", "access token"), ("id_token", "ID token")] {
        if let Some(Value::String(token)) = obj.get(field) {
            let f = Finding::new(
                Reason::Malformed,
                "json",
                format!(
                    "a token response (JSON) was pasted, not a token; its `{field}` is \
                     diagnosed below"
                ),
                format!(
                    "send only the value of `access_token`, not the whole response{}",
                    if field == "id_token" {
                        " (this response has no `access_token`: the ID token is not meant for \
                         APIs)"
                    } else {
                        ""
                    }
                ),
            )
            .with("members", members)
            .with("diagnosed", format!("the {what}"));
            return (f, Some(token.trim().to_owned()));
        }
    }
    let claim_like = ["exp", "iss", "sub", "aud", "iat"]
        .iter()
        .any(|c| obj.contains_key(*c));
    let (facts, hint) = if claim_like {
        (
            "decoded claims (JSON) were pasted, not the encoded token",
            "paste the encoded token (`xxxxx.yyyyy.zzzzz`), not the output of a JWT decoder",
        )
    } else if obj.contains_key("keys") || obj.contains_key("kty") {
        (
            "a JWK or JWK set (JSON) was pasted, not a token",
            "pass the token here; keys belong in the configuration",
        )
    } else {
        (
            "a JSON object was pasted, not a token",
            "paste the encoded token (`xxxxx.yyyyy.zzzzz`)",
        )
    };
    (
        Finding::new(Reason::Malformed, "json", facts, hint).with("members", members),
        None,
    )
}

fn decode_segment(seg: &str) -> Option<Map<String, Value>> {
    if seg.is_empty() || seg.len() > 256 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(seg.trim_end_matches('=')).ok()?;
    match serde_json::from_slice::<Value>(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

type JsonObject = Map<String, Value>;

/// The header and claims as decoded, for display (never the signature).
fn decode_parts(text: &str) -> (Option<JsonObject>, Option<JsonObject>) {
    let segments: Vec<&str> = text.split('.').collect();
    match segments.len() {
        0 | 1 => (None, None),
        2 | 3 => {
            let header = decode_segment(segments[0]);
            // An encrypted token's second segment is not claims.
            let claims = if header.as_ref().is_some_and(|h| h.contains_key("enc")) {
                None
            } else {
                decode_segment(segments[1])
            };
            (header, claims)
        }
        _ => (decode_segment(segments[0]), None),
    }
}

// ---------------------------------------------------------------------------------------------
// Explaining each problem.

struct Cx<'a> {
    cfg: &'a ConfigInner,
    now: i64,
    text: &'a str,
    header: Option<&'a Map<String, Value>>,
    claims: Option<&'a Map<String, Value>>,
    trust: Option<&'a Trust>,
    keys: &'a [KeyInfo],
    remote: Option<crate::keys::KeyStatus>,
    kind: Option<&'a Kind>,
}

impl Cx<'_> {
    fn header_str(&self, name: &str) -> Option<&str> {
        self.header?.get(name)?.as_str()
    }
    fn claim(&self, name: &str) -> Option<&Value> {
        self.claims?.get(name)
    }
    fn claim_str(&self, name: &str) -> Option<&str> {
        self.claim(name)?.as_str()
    }
    fn alg(&self) -> Option<Algorithm> {
        self.header_str("alg")?.parse().ok()
    }
    fn expected_issuers(&self) -> Vec<String> {
        self.cfg
            .trusts
            .iter()
            .flat_map(|t| t.issuers.iter().cloned())
            .collect()
    }
    fn leeway_text(&self) -> String {
        format!("`.leeway(..)` (now {} s, at most 5 min)", self.cfg.leeway)
    }
}

fn select_trust<'a>(cfg: &'a ConfigInner, iss: Option<&str>) -> Option<&'a Trust> {
    let trust = match (cfg.check_issuer, iss) {
        (false, _) => cfg.trusts.first(),
        (true, Some(iss)) => cfg
            .trusts
            .iter()
            .find(|t| t.issuers.iter().any(|i| i == iss)),
        (true, None) => None,
    };
    trust.or(if cfg.trusts.len() == 1 {
        cfg.trusts.first()
    } else {
        None
    })
}

fn remote_status(keys: &KeySource) -> Option<crate::keys::KeyStatus> {
    match keys {
        #[cfg(feature = "remote")]
        KeySource::Remote(r) => Some(r.status()),
        _ => None,
    }
}

fn explain(cx: &Cx<'_>, problem: &Problem, err: &AuthError) -> Finding {
    let subject = problem.subject().unwrap_or("");
    match problem.reason() {
        Reason::Malformed => malformed(cx, subject),
        Reason::TooLarge => Finding::new(
            Reason::TooLarge,
            "size",
            format!(
                "the token is {} bytes; the limit is {} bytes",
                cx.text.len(),
                cx.cfg.max_token_len
            ),
            "make the token smaller (long `groups` or `roles` lists are the usual cause: \
             send fewer claims) or raise `.max_token_len(..)` (default 16 KiB)",
        )
        .with("length", cx.text.len())
        .with("max", cx.cfg.max_token_len),
        Reason::AlgNotAllowed => alg_not_allowed(cx),
        Reason::UnknownKey => unknown_key(cx),
        Reason::BadSignature => bad_signature(cx),
        Reason::Expired => expired(cx),
        Reason::NotYetValid => not_yet_valid(cx),
        Reason::WrongIssuer => wrong_issuer(cx),
        Reason::WrongAudience => wrong_audience(cx),
        Reason::WrongType => wrong_type(cx),
        Reason::MissingClaim => missing_claim(cx, subject),
        Reason::InvalidClaim => invalid_claim(cx, subject),
        Reason::Revoked => {
            let jti = cx
                .claim_str("jti")
                .map(|j| format!(" (`jti` `{}`)", clip(j, 80)))
                .unwrap_or_default();
            Finding::new(
                Reason::Revoked,
                "jti",
                format!("the token{jti} has been revoked"),
                "get a new token (log in again); a revoked token stays refused until it expires",
            )
        }
        Reason::RevocationUnavailable => Finding::new(
            Reason::RevocationUnavailable,
            "",
            "the revocation store could not be asked and the policy is to fail closed",
            "check that this host reaches the revocation store; the service answers 503 with \
             `Retry-After` meanwhile",
        ),
        Reason::KeysUnavailable => keys_unavailable(cx, err),
        Reason::InsufficientScope => {
            let required = err.required_scopes().unwrap_or("");
            Finding::new(
                Reason::InsufficientScope,
                "scope",
                format!("the token lacks a required scope `{required}`"),
                "request the scope when getting the token and make sure the client may have it",
            )
        }
        reason => Finding::new(reason, subject, reason.description(), ""),
    }
}

fn malformed(cx: &Cx<'_>, cause: &str) -> Finding {
    let segments = cx.text.split('.').count();
    let f = if cause.contains("no '.'") {
        Finding::new(
            Reason::Malformed,
            "opaque",
            format!(
                "the token has no `.`: it is not a JWT but an opaque token of {} characters (a \
                 reference token, or a refresh token sent as an access token)",
                cx.text.chars().count()
            ),
            "this API accepts JWT access tokens only; opaque tokens are checked by \
             introspection at the issuer (RFC 7662). Ask the authorization server for a JWT \
             access token (e.g. Auth0 issues opaque tokens when no `audience` is requested) \
             and send the access token, not the refresh token",
        )
        .with("length", cx.text.chars().count())
    } else if cause.contains("JWE") {
        let enc = [("alg", "alg"), ("enc", "enc")]
            .iter()
            .filter_map(|(k, _)| cx.header_str(k).map(|v| format!("`{k}` `{}`", clip(v, 40))))
            .collect::<Vec<_>>();
        let detail = if enc.is_empty() {
            String::new()
        } else {
            format!(", {}", enc.join(", "))
        };
        Finding::new(
            Reason::Malformed,
            "jwe",
            format!("the token has five segments: it is encrypted (JWE{detail})"),
            "this API needs a signed JWT (JWS): turn off access-token encryption for this API \
             at the identity provider, or decrypt the token before it reaches this service",
        )
    } else if cause.contains("two segments") {
        Finding::new(
            Reason::Malformed,
            "segments",
            "the token has two segments: the signature is missing (`header.payload`)",
            "copy the whole token (it was cut at a `.`); unsigned tokens are never accepted",
        )
    } else if cause.contains("too many segments") {
        Finding::new(
            Reason::Malformed,
            "segments",
            format!(
                "the token has {segments} segments; a signed JWT has three \
                 (`header.payload.signature`)"
            ),
            "send one token: several tokens or other text may have been joined",
        )
    } else if cause.contains("empty header or payload") {
        Finding::new(
            Reason::Malformed,
            "segments",
            "the header or the payload segment is empty",
            "copy the whole token; a JWT is `header.payload.signature`, none of them empty",
        )
    } else if cause.contains("nested") {
        Finding::new(
            Reason::Malformed,
            "cty",
            "the header has `cty: JWT`: a token nested inside another token",
            "send the inner token; nested tokens are not supported",
        )
    } else if cause.contains("critical") {
        let crit = cx
            .header
            .and_then(|h| h.get("crit"))
            .map(|v| show_json(v, 100))
            .unwrap_or_default();
        Finding::new(
            Reason::Malformed,
            "crit",
            format!("the header marks extensions as critical (`crit` {crit}), which this API does not understand"),
            "the issuer must not require extensions this API does not implement (RFC 7515 \
             §4.1.11)",
        )
    } else if cause.contains("payload") {
        Finding::new(
            Reason::Malformed,
            "payload",
            "the payload (second segment) does not decode to a JSON object of claims",
            "the token is damaged or not a JWT: copy it from its source again",
        )
    } else if cause.contains("header") {
        Finding::new(
            Reason::Malformed,
            "header",
            "the header (first segment) does not decode to a JSON object with `alg`",
            "the token is damaged or not a JWT: its first segment must be the base64url of a \
             JSON object such as {\"alg\":\"RS256\",\"typ\":\"JWT\"}",
        )
    } else {
        Finding::new(
            Reason::Malformed,
            "segments",
            format!("the token is not a well-formed JWT: {cause}"),
            "send a compact JWS: three unpadded base64url segments joined by `.`",
        )
    };
    f.with("cause", cause).with("segments_count", segments)
}

fn family(alg: Algorithm) -> &'static str {
    let name = format!("{alg:?}");
    if name.starts_with("HS") {
        "HMAC"
    } else if name.starts_with("RS") || name.starts_with("PS") {
        "RSA"
    } else if name.starts_with("ES") {
        "EC"
    } else {
        "Ed25519"
    }
}

fn key_constructor(family: &str) -> &'static str {
    match family {
        "HMAC" => "Keys::hmac(..)",
        "RSA" => "Keys::rsa_pem(..)",
        "EC" => "Keys::ec_pem(..)",
        _ => "Keys::ed_pem(..)",
    }
}

fn key_families(keys: &[KeyInfo]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in keys {
        for a in &k.algorithms {
            let f = family(*a);
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

fn key_algorithms(keys: &[KeyInfo]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        for a in &k.algorithms {
            let name = format!("{a:?}");
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The key the token names, by the lookup rule of [`crate::keys`].
fn find_key<'k>(keys: &'k [KeyInfo], kid: Option<&str>, alg: Algorithm) -> Option<&'k KeyInfo> {
    let single = |pred: &dyn Fn(&KeyInfo) -> bool| {
        let mut it = keys.iter().filter(|k| pred(k));
        match (it.next(), it.next()) {
            (Some(k), None) => Some(k),
            _ => None,
        }
    };
    if let Some(kid) = kid {
        if let Some(k) = keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
            return Some(k);
        }
        return single(&|k: &KeyInfo| k.kid.is_none() && k.algorithms.contains(&alg));
    }
    single(&|k: &KeyInfo| k.algorithms.contains(&alg))
}

fn describe_key(k: &KeyInfo) -> String {
    let algs: Vec<String> = k.algorithms.iter().map(|a| format!("{a:?}")).collect();
    match &k.kid {
        Some(kid) => format!("key `{kid}` ({}, {})", k.kind, algs.join(", ")),
        None => format!("the {} ({})", k.kind, algs.join(", ")),
    }
}

fn alg_not_allowed(cx: &Cx<'_>) -> Finding {
    let alg_text = cx.header_str("alg").unwrap_or("");
    let Some(alg) = cx.alg() else {
        if alg_text.eq_ignore_ascii_case("none") {
            return Finding::new(
                Reason::AlgNotAllowed,
                "alg",
                "`alg` is `none`: the token is not signed",
                "unsigned tokens are never accepted: get a signed token from the issuer (a \
                 `none` token sent to an API is a test token or a forgery attempt)",
            )
            .with("alg", "none");
        }
        return Finding::new(
            Reason::AlgNotAllowed,
            "alg",
            format!(
                "`alg` `{}` is not a supported signature algorithm (HS256–HS512, RS256–RS512, \
                 PS256–PS512, ES256, ES384, EdDSA)",
                clip(alg_text, 40)
            ),
            "have the issuer sign with one of the supported algorithms",
        )
        .with("alg", clip(alg_text, 40));
    };
    let token_family = family(alg);
    let families = key_families(cx.keys);
    let algorithms = key_algorithms(cx.keys);
    let kid = cx.header_str("kid");
    let named = kid.and_then(|kid| cx.keys.iter().find(|k| k.kid.as_deref() == Some(kid)));
    let facts = match named {
        Some(k) if !k.algorithms.contains(&alg) => format!(
            "the token is {alg:?} but {} does not accept it",
            describe_key(k)
        ),
        _ if cx.keys.is_empty() => format!("the token is {alg:?} but no keys are loaded"),
        _ => format!(
            "the token is {alg:?} but the configured keys are {} ({})",
            families.join(" and "),
            algorithms.join(", ")
        ),
    };
    let hint = if token_family == "HMAC" && !families.is_empty() && !families.contains(&"HMAC") {
        format!(
            "an {alg:?} token for an API with {} keys comes from another issuer, or is forged \
             (algorithm confusion): get a token from the configured issuer; only if this API \
             really shares a secret with the issuer, add it with `Keys::hmac(..)`",
            families.join(" and ")
        )
    } else if families.contains(&token_family) {
        format!(
            "the keys accept {} only: have the issuer sign with one of them, or widen what the \
             key accepts (`.algorithms(..)` on the configuration or the key, the JWK's `alg`)",
            algorithms.join(", ")
        )
    } else {
        format!(
            "configure the issuer's {token_family} key ({}), or have the issuer sign with {}",
            key_constructor(token_family),
            if algorithms.is_empty() {
                "an algorithm of the configured keys".to_owned()
            } else {
                algorithms.join(", ")
            }
        )
    };
    Finding::new(Reason::AlgNotAllowed, "alg", facts, hint)
        .with("alg", format!("{alg:?}"))
        .with("key_types", families)
        .with("key_algorithms", algorithms)
}

fn other_issuer(cx: &Cx<'_>) -> Option<String> {
    let iss = cx.claim_str("iss")?;
    let expected = cx.expected_issuers();
    (!expected.is_empty() && !expected.iter().any(|e| e == iss))
        .then(|| format!("`{}`", clip(iss, 120)))
}

fn unknown_key(cx: &Cx<'_>) -> Finding {
    let alg = cx.alg();
    let alg_name = alg.map(|a| format!("{a:?}")).unwrap_or_default();
    let known: Vec<String> = cx.keys.iter().filter_map(|k| k.kid.clone()).collect();
    let kidless = cx.keys.iter().filter(|k| k.kid.is_none()).count();
    let source = cx
        .remote
        .as_ref()
        .map(|s| format!(" fetched from {}", s.source))
        .unwrap_or_default();
    let from = other_issuer(cx)
        .map(|iss| format!(" (its `iss` is {iss})"))
        .unwrap_or_default();
    match cx.header_str("kid") {
        Some(kid) => {
            let has = if cx.keys.is_empty() {
                "which is empty".to_owned()
            } else if known.is_empty() {
                format!("whose {} key(s) have no `kid`", cx.keys.len())
            } else {
                let mut s = format!("which has {}", list(&known));
                if kidless > 0 {
                    let _ = write!(s, " and {kidless} key(s) without a `kid`");
                }
                s
            };
            let hint = if cx.remote.is_some() {
                format!(
                    "the key set was refetched and still lacks `{kid}`: the token comes from \
                     another issuer or environment{from}, or it was signed with a key the \
                     issuer has not published yet (check the JWKS URL or OIDC issuer)"
                )
            } else {
                format!(
                    "the configured keys (JWKS) are outdated, since the issuer rotated its \
                     keys: update them, or follow rotation with `Keys::jwks_url(..)`; or the \
                     token comes from a wrong issuer or environment{from}"
                )
            };
            Finding::new(
                Reason::UnknownKey,
                "kid",
                format!(
                    "`kid` `{}` is not in the key set{source}, {has}",
                    clip(kid, 80)
                ),
                hint,
            )
            .with("kid", clip(kid, 80))
            .with("known_kids", known)
            .with("alg", alg_name)
        }
        None => {
            let candidates: Vec<&KeyInfo> = match alg {
                Some(a) => cx
                    .keys
                    .iter()
                    .filter(|k| k.algorithms.contains(&a))
                    .collect(),
                None => Vec::new(),
            };
            let names: Vec<String> = candidates
                .iter()
                .map(|k| k.kid.clone().unwrap_or_else(|| "(no kid)".into()))
                .collect();
            Finding::new(
                Reason::UnknownKey,
                "kid",
                format!(
                    "the token has no `kid` and {} keys accept {alg_name} ({}): the key cannot \
                     be chosen",
                    candidates.len(),
                    list(&names)
                ),
                format!(
                    "have the issuer put a `kid` in the header, or configure a single key for \
                     {alg_name}"
                ),
            )
            .with("kid", Value::Null)
            .with("known_kids", known)
            .with("alg", alg_name)
        }
    }
}

fn bad_signature(cx: &Cx<'_>) -> Finding {
    let alg = cx.alg();
    let kid = cx.header_str("kid");
    let key = alg.and_then(|a| find_key(cx.keys, kid, a));
    let key_text = key
        .map(describe_key)
        .unwrap_or_else(|| "the configured key".to_owned());
    let hmac = alg.is_some_and(|a| family(a) == "HMAC");
    let mut facts = format!("the signature does not verify with {key_text}");
    if let Some(iss) = other_issuer(cx) {
        let _ = write!(
            facts,
            "; the token was issued by {iss}, not by the configured issuer"
        );
    }
    let hint = if hmac {
        "the secret differs from the one the issuer signs with: check the client secret or \
         shared secret (same environment, no trailing newline or spaces, base64-decoded if the \
         issuer gives it base64-encoded); or the token was altered after signing"
    } else {
        "the token was signed with another private key: the key of another environment or \
         tenant (staging vs production) under the same `kid`, or an outdated public key; or \
         the token was altered after signing. Compare the token's `iss` and `kid` with the \
         configured keys"
    };
    let mut f = Finding::new(Reason::BadSignature, "signature", facts, hint)
        .with("alg", alg.map(|a| format!("{a:?}")).unwrap_or_default());
    if let Some(k) = key {
        f = f
            .with("kid", k.kid.clone().map_or(Value::Null, Value::from))
            .with("key_type", k.kind);
    }
    f
}

fn expired(cx: &Cx<'_>) -> Finding {
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
        cx.cfg.leeway
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
            human((ago - cx.cfg.leeway).max(0))
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
        .with("leeway_secs", cx.cfg.leeway)
        .with("checked_at", cx.now)
        .with("clock_skew_suspected", skew)
}

fn not_yet_valid(cx: &Cx<'_>) -> Finding {
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
        cx.cfg.leeway
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
        .with("leeway_secs", cx.cfg.leeway)
        .with("checked_at", cx.now)
        .with("clock_skew_suspected", skew)
}

fn iat_warning(cx: &Cx<'_>) -> Option<Finding> {
    let iat = cx.claim("iat").and_then(numeric_date)?;
    let ahead = iat - cx.now;
    if ahead <= cx.cfg.leeway {
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

/// How `actual` differs from `expected` when they are near misses.
fn lookalike(actual: &str, expected: &str) -> Option<String> {
    if actual == expected {
        return None;
    }
    fn split(s: &str) -> (Option<&'static str>, &str) {
        if let Some(rest) = strip_prefix_ci(s, "https://") {
            (Some("https"), rest)
        } else if let Some(rest) = strip_prefix_ci(s, "http://") {
            (Some("http"), rest)
        } else {
            (None, s)
        }
    }
    let (a_trim, e_trim) = (actual.trim(), expected.trim());
    let (a_scheme, a_rest) = split(a_trim);
    let (e_scheme, e_rest) = split(e_trim);
    let (a_core, e_core) = (a_rest.trim_end_matches('/'), e_rest.trim_end_matches('/'));
    if a_core.eq_ignore_ascii_case(e_core) && (a_scheme.is_some() == e_scheme.is_some()) {
        let mut diffs: Vec<String> = Vec::new();
        if a_trim.len() != actual.len() || e_trim.len() != expected.len() {
            diffs.push("surrounding whitespace".into());
        }
        if a_scheme != e_scheme {
            diffs.push(format!(
                "the scheme (`{}` in the token, `{}` configured)",
                a_scheme.unwrap_or(""),
                e_scheme.unwrap_or("")
            ));
        }
        if a_rest.ends_with('/') != e_rest.ends_with('/') {
            let which = if a_rest.ends_with('/') {
                "the token's value has a trailing slash, the configured one not"
            } else {
                "the configured value has a trailing slash, the token's not"
            };
            diffs.push(format!("a trailing slash ({which})"));
        }
        if a_core != e_core {
            diffs.push("letter case (values are compared exactly)".into());
        }
        if !diffs.is_empty() {
            return Some(format!(
                "`{}` and `{}` differ only by {}",
                clip(actual, 120),
                clip(expected, 120),
                diffs.join(" and ")
            ));
        }
    }
    let strip_api = |s: &str| strip_prefix_ci(s, "api://").map(str::to_owned);
    if strip_api(actual).as_deref() == Some(expected)
        || strip_api(expected).as_deref() == Some(actual)
    {
        return Some(format!(
            "`{}` and `{}` differ only by the `api://` prefix (Azure AD: the application ID \
             URI vs the client ID)",
            clip(actual, 120),
            clip(expected, 120)
        ));
    }
    None
}

fn wrong_issuer(cx: &Cx<'_>) -> Finding {
    let actual = cx.claim_str("iss").unwrap_or("");
    let expected = cx.expected_issuers();
    let similar = expected.iter().find_map(|e| lookalike(actual, e));
    let azure_v1 = strip_prefix_ci(actual, "https://sts.windows.net/").is_some()
        && expected
            .iter()
            .any(|e| e.contains("login.microsoftonline.com"));
    let mut facts = format!(
        "`iss` is `{}`, expected {}",
        clip(actual, 120),
        one_of(&expected)
    );
    if let Some(s) = &similar {
        let _ = write!(facts, "; {s}");
    }
    if azure_v1 {
        let _ = write!(
            facts,
            "; `sts.windows.net` is the issuer of Azure AD v1.0 tokens, \
             `login.microsoftonline.com/…/v2.0` of v2.0 tokens"
        );
    }
    let hint = if azure_v1 {
        format!(
            "request v2.0 tokens (set `accessTokenAcceptedVersion` to 2 in the API's app \
             manifest), or trust the v1.0 issuer with `.issuer(\"{}\")`",
            clip(actual, 120)
        )
    } else if similar.is_some() {
        format!(
            "issuers are compared exactly: configure `.issuer(\"{}\")`, spelled exactly like \
             the `issuer` of the identity provider's discovery document",
            clip(actual, 120)
        )
    } else {
        format!(
            "get a token from {}; or, if you trust `{}`, add it with `.issuer(..)` (or \
             `.trust(Issuer::new(..).keys(..))` with its own keys)",
            one_of(&expected),
            clip(actual, 120)
        )
    };
    Finding::new(Reason::WrongIssuer, "iss", facts, hint)
        .with("actual", clip(actual, 256))
        .with("expected", expected)
        .with("lookalike", similar.map_or(Value::Null, Value::from))
}

fn audiences_of(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![clip(s, 256)],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .take(16)
            .map(|s| clip(s, 256))
            .collect(),
        _ => Vec::new(),
    }
}

fn wrong_audience(cx: &Cx<'_>) -> Finding {
    let actual = audiences_of(cx.claim("aud"));
    let expected: Vec<String> = cx.trust.map(|t| t.audiences.clone()).unwrap_or_default();
    let similar = actual
        .iter()
        .find_map(|a| expected.iter().find_map(|e| lookalike(a, e)));
    let shown = if actual.len() == 1 {
        format!("`{}`", clip(&actual[0], 120))
    } else {
        format!("[{}]", list(&actual))
    };
    let mut facts = format!("`aud` is {shown}, expected one of {}", list(&expected));
    if let Some(s) = &similar {
        let _ = write!(facts, "; {s}");
    }
    let client = cx
        .claim_str("azp")
        .or_else(|| cx.claim_str("client_id"))
        .filter(|c| actual.iter().any(|a| a == c));
    if let Some(c) = client {
        let _ = write!(
            facts,
            "; `aud` is the client's own id `{}`: the token was issued to the client (an ID \
             token, or a token requested without this API as audience)",
            clip(c, 120)
        );
    }
    let first = actual.first().map(|a| clip(a, 120)).unwrap_or_default();
    let hint = if similar.is_some() {
        format!(
            "audiences are compared exactly: configure `.audience(\"{first}\")`, or request the \
             token for {}",
            list(&expected)
        )
    } else {
        format!(
            "request a token for this API (Auth0: the `audience` parameter; Azure AD: the scope \
             `<application ID URI>/.default`; Keycloak: an audience mapper), or, if this API \
             really is `{first}`, add `.audience(\"{first}\")`"
        )
    };
    Finding::new(Reason::WrongAudience, "aud", facts, hint)
        .with("actual", actual)
        .with("expected", expected)
        .with("lookalike", similar.map_or(Value::Null, Value::from))
}

/// What a token that is not an access token is, with the evidence.
struct Kind {
    name: &'static str,
    evidence: Vec<String>,
}

fn token_kind(header: &Map<String, Value>, claims: &Map<String, Value>) -> Option<Kind> {
    let _ = header;
    let str_claim = |n: &str| claims.get(n).and_then(Value::as_str);
    let mut id = Vec::new();
    for c in ["nonce", "at_hash", "c_hash"] {
        if claims.contains_key(c) {
            id.push(format!("claim `{c}`"));
        }
    }
    if str_claim("token_use") == Some("id") {
        id.push("`token_use` is `id`".into());
    }
    if str_claim("typ").is_some_and(|t| t.eq_ignore_ascii_case("id")) {
        id.push("claim `typ` is `ID`".into());
    }
    let mut refresh = Vec::new();
    if let Some(t) = str_claim("typ") {
        if t.eq_ignore_ascii_case("refresh") || t.eq_ignore_ascii_case("offline") {
            refresh.push(format!("claim `typ` is `{}`", clip(t, 20)));
        }
    }
    if str_claim("token_use") == Some("refresh") {
        refresh.push("`token_use` is `refresh`".into());
    }
    if let Some(t) = str_claim("token_type") {
        if t.eq_ignore_ascii_case("refresh_token") || t.eq_ignore_ascii_case("refresh") {
            refresh.push(format!("`token_type` is `{}`", clip(t, 20)));
        }
    }
    if !refresh.is_empty() {
        Some(Kind {
            name: "a refresh token",
            evidence: refresh,
        })
    } else if !id.is_empty() {
        Some(Kind {
            name: "an ID token",
            evidence: id,
        })
    } else {
        None
    }
}

fn kind_hint(kind: &Kind) -> String {
    if kind.name == "an ID token" {
        "send the access token (`access_token` of the token response), not the ID token: an ID \
         token tells the client who logged in, it does not authorize API calls"
            .to_owned()
    } else {
        "send the access token, not the refresh token: a refresh token is only for getting new \
         access tokens from the issuer"
            .to_owned()
    }
}

fn kind_finding(kind: &Kind) -> Finding {
    Finding::new(
        Reason::WrongType,
        "token kind",
        format!(
            "this is {}, not an access token ({})",
            kind.name,
            kind.evidence.join(", ")
        ),
        kind_hint(kind),
    )
    .with(
        "token_kind",
        kind.name.trim_start_matches("a ").trim_start_matches("an "),
    )
    .with("evidence", kind.evidence.clone())
}

fn wrong_type(cx: &Cx<'_>) -> Finding {
    let required = cx.cfg.required_type.clone().unwrap_or_default();
    let typ = cx.header_str("typ");
    let mut facts = match typ {
        Some(t) => format!("header `typ` is `{}`, required `{required}`", clip(t, 40)),
        None => format!("the header has no `typ`, required `{required}`"),
    };
    let hint = match cx.kind {
        Some(kind) => {
            let _ = write!(
                facts,
                "; this is {} ({})",
                kind.name,
                kind.evidence.join(", ")
            );
            kind_hint(kind)
        }
        None => format!(
            "send an access token of type `{required}` (RFC 9068); if your issuer does not set \
             it, stop requiring it (`.require_type(..)`, `.access_token_profile()`)"
        ),
    };
    let mut f = Finding::new(Reason::WrongType, "typ", facts, hint)
        .with("typ", typ.map_or(Value::Null, |t| Value::from(clip(t, 40))))
        .with("required", required);
    if let Some(kind) = cx.kind {
        f = f
            .with(
                "token_kind",
                kind.name.trim_start_matches("a ").trim_start_matches("an "),
            )
            .with("evidence", kind.evidence.clone());
    }
    f
}

fn missing_claim(cx: &Cx<'_>, claim: &str) -> Finding {
    let (facts, hint) = match claim {
        "exp" => (
            "the token has no `exp`: tokens without an expiry are refused".to_owned(),
            "have the issuer set `exp` (every access token should expire)".to_owned(),
        ),
        "iss" => (
            "the token has no `iss`, and the issuer check is on".to_owned(),
            "have the issuer set `iss`, or call `.skip_issuer_check()` if your tokens never \
             carry one"
                .to_owned(),
        ),
        "aud" => (
            "the token has no `aud`, and the audience check is on".to_owned(),
            "request the token for this API so it carries `aud`, or call \
             `.skip_audience_check()` if your tokens never carry one"
                .to_owned(),
        ),
        c if cx.cfg.required_claims.iter().any(|r| r == c) => (
            format!(
                "the token has no `{c}`, which the configuration requires (`.require_claim(..)` \
                 or `.access_token_profile()`)"
            ),
            format!(
                "have the issuer include `{c}` (e.g. with a claim mapper), or stop requiring it"
            ),
        ),
        c => (
            format!("a check of the configuration (`.check(..)`) reports `{c}` missing"),
            format!("include `{c}` in the token, or relax the check"),
        ),
    };
    Finding::new(Reason::MissingClaim, claim, facts, hint).with("claim", claim)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid_claim(cx: &Cx<'_>, claim: &str) -> Finding {
    let value = cx.claim(claim);
    let shown = value.map(|v| show_json(v, 80)).unwrap_or_default();
    let (facts, hint) = match (claim, value) {
        ("exp" | "nbf" | "iat", Some(v)) => {
            let facts = match v.as_f64() {
                Some(n) if (1e11..1e16).contains(&n.abs()) => format!(
                    "`{claim}` is {shown}: that counts milliseconds; a NumericDate counts \
                     seconds since 1970"
                ),
                Some(_) => format!("`{claim}` is {shown}: not a date between the years 1 and 9999"),
                None => format!(
                    "`{claim}` is {} ({shown}); it must be a NumericDate: a JSON number of \
                     seconds since 1970",
                    json_type(v)
                ),
            };
            (
                facts,
                format!(
                    "have the issuer write `{claim}` as a number of seconds since 1970 (e.g. \
                     `1700000000`)"
                ),
            )
        }
        ("aud", Some(v)) => (
            format!(
                "`aud` is {} ({shown}); it must be a string or an array of strings",
                json_type(v)
            ),
            "have the issuer write `aud` as a string or an array of strings".to_owned(),
        ),
        ("iss", Some(v)) => (
            format!("`iss` is {} ({shown}); it must be a string", json_type(v)),
            "have the issuer write `iss` as a string".to_owned(),
        ),
        (c, Some(_)) => (
            format!("a check of the configuration (`.check(..)`) refuses `{c}` ({shown})"),
            format!("get a token whose `{c}` this API accepts, or relax the check"),
        ),
        (c, None) => (
            format!("the claims do not fit: {c}"),
            "compare the token's claims with the claims type the service expects".to_owned(),
        ),
    };
    Finding::new(Reason::InvalidClaim, claim, facts, hint).with("claim", claim)
}

fn keys_unavailable(cx: &Cx<'_>, err: &AuthError) -> Finding {
    let retry = err.retry_after();
    let (facts, source) =
        match &cx.remote {
            Some(s) => {
                (
                    format!(
                "no usable keys: the key set at {} could not be fetched ({} failed fetch(es), \
                 {} successful{})",
                s.source,
                s.fetch_error,
                s.fetch_ok,
                if s.stale { ", the last keys are stale past the bound" } else { "" }
            ),
                    Value::from(s.source.clone()),
                )
            }
            None => ("no usable keys could be obtained".to_owned(), Value::Null),
        };
    Finding::new(
        Reason::KeysUnavailable,
        "keys",
        facts,
        "check that this host reaches the key URL (DNS, proxy, firewall, TLS) and that it \
         serves a JWK set; an `http://` URL needs `.allow_http()`. The service answers 503 with \
         `Retry-After` meanwhile",
    )
    .with("source", source)
    .with("retry_after_secs", retry.map_or(Value::Null, Value::from))
}

/// Scopes granted by `scope` / `scp` (a space-separated string or an array).
fn scope_finding(cx: &Cx<'_>, required: &[String]) -> Option<Finding> {
    let claims = cx.claims?;
    let mut granted: Vec<String> = Vec::new();
    let mut from: Vec<&str> = Vec::new();
    for name in ["scope", "scp"] {
        let items: Vec<String> = match claims.get(name) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => continue,
        };
        from.push(name);
        for s in items {
            if !granted.contains(&s) {
                granted.push(s);
            }
        }
    }
    let missing: Vec<String> = required
        .iter()
        .filter(|r| !granted.contains(r))
        .cloned()
        .collect();
    if missing.is_empty() {
        return None;
    }
    let facts = if from.is_empty() {
        format!(
            "the token has no `scope` or `scp` claim; required: {}",
            list(required)
        )
    } else {
        let claim_names: Vec<String> = from.iter().map(|s| (*s).to_owned()).collect();
        format!(
            "the token grants {} (claim {}); missing: {}",
            if granted.is_empty() {
                "nothing".to_owned()
            } else {
                list(&granted)
            },
            list(&claim_names),
            list(&missing)
        )
    };
    Some(
        Finding::new(
            Reason::InsufficientScope,
            "scope",
            facts,
            format!(
                "request the missing scope when getting the token (`scope={}` in the token \
                 request) and make sure the identity provider allows it for this client",
                missing.join(" ")
            ),
        )
        .with("required", required.to_vec())
        .with("granted", granted)
        .with("missing", missing),
    )
}

// ---------------------------------------------------------------------------------------------
// Text helpers.

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

fn show_json(v: &Value, max: usize) -> String {
    clip(&v.to_string(), max)
}

/// `` `a`, `b` `` (or `(none)`).
fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "(none)".to_owned();
    }
    items
        .iter()
        .take(20)
        .map(|s| format!("`{}`", clip(s, 120)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn one_of(items: &[String]) -> String {
    match items.len() {
        0 => "(no issuer configured)".to_owned(),
        1 => list(items),
        _ => format!("one of {}", list(items)),
    }
}

/// A duration in its two largest units: `45 s`, `5 min 12 s`, `3 h 2 min`, `2 d 4 h`.
fn human(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (big, small, bu, su) = if s < 60 {
        return format!("{s} s");
    } else if s < 3600 {
        (s / 60, s % 60, "min", "s")
    } else if s < 86_400 {
        (s / 3600, s % 3600 / 60, "h", "min")
    } else {
        (s / 86_400, s % 86_400 / 3600, "d", "h")
    };
    if small == 0 {
        format!("{big} {bu}")
    } else {
        format!("{big} {bu} {small} {su}")
    }
}

fn relative(t: i64, now: i64) -> String {
    match now - t {
        0 => "now".to_owned(),
        d if d > 0 => format!("{} ago", human(d)),
        d => format!("in {}", human(-d)),
    }
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_their_two_largest_units() {
        assert_eq!(human(0), "0 s");
        assert_eq!(human(45), "45 s");
        assert_eq!(human(60), "1 min");
        assert_eq!(human(312), "5 min 12 s");
        assert_eq!(human(3 * 3600 + 2 * 60 + 9), "3 h 2 min");
        assert_eq!(human(7200), "2 h");
        assert_eq!(human(2 * 86_400 + 4 * 3600 + 59), "2 d 4 h");
        assert_eq!(human(-312), "5 min 12 s");
    }

    #[test]
    fn instants_are_utc_calendar_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(utc(253_402_300_799), "9999-12-31 23:59:59 UTC");
        assert_eq!(utc(-62_135_596_800), "0001-01-01 00:00:00 UTC");
    }

    #[test]
    fn lookalikes_name_the_difference() {
        let slash = lookalike("https://a.example/", "https://a.example").unwrap();
        assert!(slash.contains("trailing slash"), "{slash}");
        let scheme = lookalike("http://a.example", "https://a.example").unwrap();
        assert!(
            scheme.contains("`http` in the token, `https` configured"),
            "{scheme}"
        );
        let case = lookalike("https://A.example", "https://a.example").unwrap();
        assert!(case.contains("letter case"), "{case}");
        let api = lookalike("1234-abcd", "api://1234-abcd").unwrap();
        assert!(api.contains("`api://` prefix"), "{api}");
        assert!(lookalike("https://a.example", "https://b.example").is_none());
    }

    #[test]
    fn revoked_and_revocation_unavailable_are_explained() {
        let cfg = AuthConfig::builder()
            .keys(crate::Keys::hmac([1u8; 32]))
            .skip_issuer_check()
            .skip_audience_check()
            .build()
            .unwrap();
        let mut claims = Map::new();
        claims.insert("jti".into(), "t-42".into());
        let cx = Cx {
            cfg: &cfg.inner,
            now: 0,
            text: "",
            header: None,
            claims: Some(&claims),
            trust: None,
            keys: &[],
            remote: None,
            kind: None,
        };
        let err = AuthError::new(Reason::Revoked);
        let f = explain(&cx, &err.problems()[0], &err);
        assert_eq!(f.reason(), Reason::Revoked);
        assert!(f.facts().contains("`jti` `t-42`"), "{}", f.facts());
        assert!(f.hint().contains("new token"), "{}", f.hint());

        let err = AuthError::new(Reason::RevocationUnavailable);
        let f = explain(&cx, &err.problems()[0], &err);
        assert!(f.facts().contains("revocation store"), "{}", f.facts());
    }

    #[test]
    fn percent_decoding_needs_escapes() {
        assert_eq!(percent_decode("ab%3D%3D").as_deref(), Some("ab=="));
        assert_eq!(percent_decode("abc"), None);
        assert_eq!(percent_decode("ab%"), None);
    }
}
