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
//! Without the key at hand, [`DiagnoseOptions::skip_signature_check`] checks everything but
//! the signature (and says so).
//!
//! The `doctor` example is a command-line front end:
//! `cargo run --example doctor -- <token> --secret-file secret.bin --aud api://orders`
//! (without a key option, it diagnoses without keys).

mod claims;
mod dpop;
mod expiry;
mod explain;
mod input;
mod kind;
mod options;
mod render;
mod signature;
mod time;

use http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::pipeline::view::{ConfigView, KeyInfo};
use crate::{AuthConfig, AuthError, Reason};

use self::claims::scope_finding;
use self::expiry::iat_warning;
use self::explain::{explain, Cx};
use self::input::{decode_parts, inspect_input};
use self::kind::{kind_finding, token_kind};
pub use self::options::DiagnoseOptions;
use self::render::{ser_opt_reason, ser_reason};
use self::time::utc;

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
    let skip_signature = options.skip_signature_check;
    // Without a key, the checks run on the configuration without keys: no key is consulted
    // (no remote set fetched) and the problems only a key decides are left out.
    let view = if skip_signature {
        ConfigView::without_keys(config)
    } else {
        ConfigView::new(config)
    };
    let input = inspect_input(token);

    // What the service would answer for the text as sent, and the problems of the repaired
    // token (the same text when nothing needed repairing).
    let clean_result = match &input.clean {
        Some(clean) => {
            let dpop = options
                .dpop
                .as_ref()
                .map(|(p, m, u)| (p.as_str(), m, u.as_str()));
            Some(view.verify_presented(clean, dpop).await)
        }
        None => None,
    };
    let sent_error: Option<AuthError> = if input.defects.is_empty() {
        clean_result
            .as_ref()
            .and_then(|r| r.as_ref().err().cloned())
    } else {
        let sent = view.verify(&input.sent).await;
        match sent {
            Err(e) => Some(e),
            // Without a key, a text with defects may show no other problem: the defects
            // found below decide the reason.
            Ok(()) if skip_signature => None,
            Ok(()) => Some(AuthError::new(Reason::Malformed)),
        }
    };
    // Read after validation: remote keys are loaded by now.
    let now = view.now();

    // An opaque token (or any, with `all_tokens`) went to introspection: its claims are the
    // issuer's answer, and there is no header.
    let introspected = input
        .clean
        .as_deref()
        .and_then(|clean| view.introspected(clean));
    let (header, claims) = match &introspected {
        Some(i) => (None, i.claims.clone()),
        None => decode_parts(&input.text),
    };
    let iss = claims
        .as_ref()
        .and_then(|c| c.get("iss"))
        .and_then(Value::as_str);
    let trust = view.trust_for(iss);
    let keys = trust.map(|t| t.keys()).unwrap_or_default();
    let kind = match (&header, &claims) {
        (Some(h), Some(c)) => token_kind(h, c),
        _ => None,
    };
    let cx = Cx {
        view: &view,
        now,
        text: &input.text,
        header: header.as_ref(),
        claims: claims.as_ref(),
        trust,
        keys: &keys,
        remote: trust.and_then(|t| t.remote_status()),
        kind: kind.as_ref(),
        dpop: options.dpop.as_ref(),
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
        _ if skip_signature => false,
        Some(Ok(_)) => true,
        Some(Err(e)) => trust.is_some() && !e.problems().iter().any(|p| unverified(p.reason())),
        None => false,
    };

    if skip_signature {
        notes.push(
            "the signature was not checked (no key was used): the header and claims are shown \
             as decoded, and anyone can make a token that says this"
                .into(),
        );
    }
    if !view.checks_issuer() {
        notes
            .push("the issuer check is off: `iss` was not compared with an expected issuer".into());
    }
    if !view.checks_audience() {
        notes.push(
            "the audience check is off: `aud` was not compared with an expected audience".into(),
        );
    }
    if clean_error.is_some_and(|e| e.reason() == Reason::KeysUnavailable) {
        notes.push(
            "no keys were available, so the signature and the claims were not checked".into(),
        );
    }
    if let Some(i) = &introspected {
        let active = match i.active {
            Some(true) => "active=true".to_owned(),
            Some(false) => "active=false".to_owned(),
            None => match &i.last_error {
                Some(e) => format!("no answer ({e})"),
                None => "no answer".to_owned(),
            },
        };
        let at = i
            .endpoint
            .as_deref()
            .unwrap_or("the endpoint named by discovery");
        notes.push(format!(
            "not a JWT: introspected at {at}; {active}; the claims shown are the issuer's answer"
        ));
    }
    if introspected.is_none()
        && (header.is_some() || claims.is_some())
        && !signature_verified
        && !skip_signature
    {
        notes.push("the header and claims are shown as decoded: they are not verified".into());
    }

    let checked_against = CheckedAgainst {
        signature_check: !skip_signature,
        issuer_check: view.checks_issuer(),
        audience_check: view.checks_audience(),
        leeway_secs: view.leeway(),
        required_type: view.required_type().map(str::to_owned),
        required_claims: view.required_claims().to_vec(),
        required_scopes: options.required_scopes.clone(),
        trusts: view
            .trusts()
            .map(|t| TrustSummary {
                issuers: t.issuers().to_vec(),
                audiences: t.audiences().to_vec(),
                key_source: t.remote_status().map(|s| s.source),
                keys: t.keys(),
            })
            .collect(),
    };

    Diagnosis {
        valid: reason.is_none() && findings.is_empty() && !skip_signature,
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

/// Everything wrong (or right) with a token: see the [module docs](self).
///
/// [`Display`](std::fmt::Display) gives a readable multi-line report (plain text);
/// [`to_ansi_string`](Diagnosis::to_ansi_string) the same with terminal colours; `Serialize`
/// gives JSON with the fields `valid`, `reason` (the code), `status`, `checked_at`,
/// `checked_at_utc`, `signature_verified`, `header`, `claims` (`null` when not decodable),
/// `findings`, `warnings`, `notes` and `checked_against` (whether the signature, issuer and
/// audience were checked, issuers, audiences, key ids and types, leeway: never key material).
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

impl AuthError {
    /// The diagnosis of the token, when the layer was built with
    /// [`TokenAuthLayer::with_diagnosis_in_responses`](crate::TokenAuthLayer::with_diagnosis_in_responses).
    ///
    /// ```
    /// use tower_token_auth::{AuthError, Reason};
    ///
    /// assert!(AuthError::new(Reason::Missing).diagnosis().is_none());
    /// ```
    pub fn diagnosis(&self) -> Option<&Diagnosis> {
        self.attachment()?.downcast_ref()
    }

    /// Attaches a full diagnosis (development option of the layer).
    pub(crate) fn with_diagnosis(self, diagnosis: Diagnosis) -> Self {
        self.with_attachment(Box::new(diagnosis))
    }
}

impl Diagnosis {
    /// `true` if the service would accept the token (and the required scopes are granted).
    /// Always `false` when the signature was not checked
    /// ([`skip_signature_check`](DiagnoseOptions::skip_signature_check)).
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

    /// The report of [`Display`](std::fmt::Display), coloured with ANSI escape codes for a
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

/// What the token was checked against (never key material).
#[derive(Clone, Debug, Serialize)]
struct CheckedAgainst {
    signature_check: bool,
    issuer_check: bool,
    audience_check: bool,
    leeway_secs: i64,
    required_type: Option<String>,
    required_claims: Vec<String>,
    required_scopes: Vec<String>,
    trusts: Vec<TrustSummary>,
}

#[derive(Clone, Debug, Serialize)]
struct TrustSummary {
    issuers: Vec<String>,
    audiences: Vec<String>,
    key_source: Option<String>,
    keys: Vec<KeyInfo>,
}
