//! The one internal interface `diagnose` is built on, besides the public API: a configuration
//! seen read-only (its rules, its trusts, its clock), the pipeline's own rule for routing a
//! token to its issuer's trust, and the pipeline itself, with or without keys. Diagnosis
//! explains what the pipeline decided, so it must read the same rules and never re-implement
//! them; keeping what it may read here lets it become its own crate.

use crate::config::{AuthConfig, ConfigInner, Trust};
use crate::error::{AuthError, Problem, Reason};
use crate::keys::KeyStatus;
use crate::validate::algorithm;

/// How a claim holding a NumericDate is read: the checks' own rule.
pub(crate) use crate::clock::numeric_date;
/// A configured key as diagnosis shows it: `kid`, key type and algorithms, never material.
pub(crate) use crate::keys::KeyInfo;

/// A configuration, read-only, with the pipeline that checks tokens against it.
pub(crate) struct ConfigView<'a> {
    held: Held<'a>,
}

enum Held<'a> {
    Keys(&'a ConfigInner),
    /// The copy without keys, built by the configuration itself.
    Keyless(Box<ConfigInner>),
}

/// One trust of a configuration: issuers, audiences and keys that go together.
#[derive(Clone, Copy)]
pub(crate) struct TrustView<'a>(&'a Trust);

impl<'a> ConfigView<'a> {
    /// The configuration as it is.
    pub(crate) fn new(config: &'a AuthConfig) -> Self {
        ConfigView {
            held: Held::Keys(&config.inner),
        }
    }

    /// The configuration with every check but no keys: [`verify`](Self::verify) consults no
    /// key (fetches no remote set) and leaves out the problems only a key decides, and the
    /// trusts show no keys. For a diagnosis without the key at hand.
    pub(crate) fn without_keys(config: &'a AuthConfig) -> Self {
        ConfigView {
            held: Held::Keyless(Box::new(config.inner.without_keys())),
        }
    }

    fn cfg(&self) -> &ConfigInner {
        match &self.held {
            Held::Keys(cfg) => cfg,
            Held::Keyless(cfg) => cfg,
        }
    }

    /// Runs the whole pipeline (remote keys are fetched if needed): the error the service
    /// would answer with. Without keys, the problems only a key decides are left out.
    pub(crate) async fn verify(&self, token: &str) -> Result<(), AuthError> {
        self.verify_presented(token, None).await
    }

    /// [`verify`](Self::verify) for a token sent with `Authorization: DPoP` and this proof,
    /// for a request of `method` to `url`, as the layer would see it.
    pub(crate) async fn verify_presented(
        &self,
        token: &str,
        dpop: Option<(&str, &http::Method, &str)>,
    ) -> Result<(), AuthError> {
        let presented = match dpop {
            None => crate::binding::Presented::default(),
            Some((proof, method, url)) => {
                let parts = http::Request::builder()
                    .method(method.clone())
                    .uri(url)
                    .header(http::header::AUTHORIZATION, format!("DPoP {token}"))
                    .header("dpop", proof)
                    .body(())
                    .map(|r| r.into_parts().0);
                match parts {
                    Ok(parts) => crate::binding::Presented::of(
                        &parts,
                        "authorization",
                        self.cfg().dpop.as_ref(),
                    ),
                    // A URL or proof that cannot be a request's: the scheme, without a proof.
                    Err(_) => crate::binding::Presented::dpop_without_proof(),
                }
            }
        };
        let result = super::verify(self.cfg(), token, presented)
            .await
            .map(|_| ());
        match &self.held {
            Held::Keys(_) => result,
            Held::Keyless(cfg) => key_problems_removed(cfg, result).map_or(Ok(()), Err),
        }
    }

    /// The current time by the configuration's clock (seconds since the epoch).
    pub(crate) fn now(&self) -> i64 {
        self.cfg().clock.now()
    }

    /// The leeway for `exp` and `nbf`, in seconds.
    pub(crate) fn leeway(&self) -> i64 {
        self.cfg().leeway
    }

    /// `false` after `.skip_issuer_check()`: `iss` is not compared.
    pub(crate) fn checks_issuer(&self) -> bool {
        self.cfg().check_issuer
    }

    /// `false` after `.skip_audience_check()`: `aud` is not compared.
    pub(crate) fn checks_audience(&self) -> bool {
        self.cfg().check_audience
    }

    /// The `typ` a token must have (normalized), if any.
    pub(crate) fn required_type(&self) -> Option<&str> {
        self.cfg().required_type.as_deref()
    }

    /// Claims a token must carry (`.require_claim(..)`, the access-token profile).
    pub(crate) fn required_claims(&self) -> &[String] {
        &self.cfg().required_claims
    }

    /// The longest token accepted, in bytes.
    pub(crate) fn max_token_len(&self) -> usize {
        self.cfg().max_token_len
    }

    /// Every trust, in configuration order.
    pub(crate) fn trusts(&self) -> impl Iterator<Item = TrustView<'_>> {
        self.cfg().trusts.iter().map(TrustView)
    }

    /// What introspection said of `token`, if it goes to introspection (the pipeline's rule):
    /// read after [`verify`](Self::verify), from the introspection cache.
    pub(crate) fn introspected(&self, token: &str) -> Option<IntrospectedView> {
        #[cfg(feature = "remote")]
        {
            let (_, introspector) = self.cfg().introspection.as_ref()?;
            if token.len() > self.cfg().max_token_len || !introspector.takes(token) {
                return None;
            }
            let (claims, active) = match introspector.peek(token) {
                Some(crate::introspection::Answer::Active { claims, .. }) => {
                    (serde_json::from_str(&claims).ok(), Some(true))
                }
                Some(crate::introspection::Answer::Inactive) => (None, Some(false)),
                None => (None, None),
            };
            Some(IntrospectedView {
                endpoint: introspector.endpoint_name(),
                claims,
                active,
                last_error: introspector.last_error(),
            })
        }
        #[cfg(not(feature = "remote"))]
        {
            let _ = token;
            None
        }
    }

    /// The RFC 7638 thumbprint of a JWK, as the DPoP check computes it.
    pub(crate) fn jwk_thumbprint(jwk: &serde_json::Value) -> Option<String> {
        crate::keys::jwk_thumbprint(jwk).ok()
    }

    /// The DPoP proof age accepted (max age, seconds), if DPoP is on.
    pub(crate) fn dpop_max_age(&self) -> Option<u64> {
        self.cfg()
            .dpop
            .as_ref()
            .map(|d| d.options.max_age.as_secs())
    }

    /// The trust a token with this `iss` is checked against: the pipeline's routing rule.
    pub(crate) fn trust_for(&self, iss: Option<&str>) -> Option<TrustView<'_>> {
        self.cfg().trust_for(iss).map(|(_, trust)| TrustView(trust))
    }
}

/// What introspection said of a token.
pub(crate) struct IntrospectedView {
    /// The endpoint asked (configured or discovered), if known.
    pub(crate) endpoint: Option<String>,
    /// The claims of an active answer.
    pub(crate) claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// `active` of the cached answer (`None`: no answer cached).
    pub(crate) active: Option<bool>,
    /// Why the last failed call failed (e.g. `HTTP status 401`).
    pub(crate) last_error: Option<String>,
}

impl<'a> TrustView<'a> {
    pub(crate) fn issuers(self) -> &'a [String] {
        &self.0.issuers
    }

    pub(crate) fn audiences(self) -> &'a [String] {
        &self.0.audiences
    }

    /// The keys usable now (remote: the current set, if loaded).
    pub(crate) fn keys(self) -> Vec<KeyInfo> {
        self.0.keys.describe()
    }

    /// The state of the remote key source; `None` for static keys.
    pub(crate) fn remote_status(self) -> Option<KeyStatus> {
        #[cfg(feature = "remote")]
        if let crate::keys::KeySource::Remote(r) = &self.0.keys {
            return Some(r.status());
        }
        None
    }
}

/// The error of a validation without keys, without the problems a key decides:
/// `unknown_key`, `bad_signature`, `keys_unavailable`, and `alg_not_allowed` when the algorithm
/// is a known one the configuration allows (an empty key set allows none). `None` if nothing
/// else is wrong.
fn key_problems_removed(cfg: &ConfigInner, result: Result<(), AuthError>) -> Option<AuthError> {
    let err = result.err()?;
    // `alg_not_allowed` comes only after the header parsed, and its facts hold that `alg`
    // (capped past 256 characters, which no algorithm name is).
    let alg_allowed = err
        .facts()
        .alg
        .as_deref()
        .and_then(algorithm)
        .is_some_and(|alg| cfg.allowed.contains(alg));
    let needs_key = |p: &Problem| match p.reason() {
        Reason::UnknownKey | Reason::BadSignature | Reason::KeysUnavailable => true,
        Reason::AlgNotAllowed => alg_allowed,
        _ => false,
    };
    if !err.problems().iter().any(needs_key) {
        return Some(err);
    }
    let kept: Vec<Problem> = err
        .problems()
        .iter()
        .filter(|p| !needs_key(p))
        .cloned()
        .collect();
    (!kept.is_empty()).then(|| AuthError::from_problems(kept, err.facts().clone()))
}
