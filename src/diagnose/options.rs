//! [`DiagnoseOptions`]: what to check beyond the configuration, and what to leave out.

/// Options for [`diagnose_with`](super::diagnose_with).
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
    pub(super) required_scopes: Vec<String>,
    pub(super) skip_signature_check: bool,
    /// A DPoP proof with the method and URL of the request it came with.
    pub(super) dpop: Option<(String, http::Method, String)>,
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

    /// Diagnoses without keys: everything but the signature, for when the key is not at hand
    /// (a JWT debugger, the `doctor` example without a key option).
    ///
    /// The shape, the header, `exp` and `nbf` against the clock, `iss`, `aud`, `typ`, the
    /// required claims and checks and the scopes are checked as the configuration says; the
    /// configuration's keys are not consulted (a remote key set is not fetched) and neither
    /// is its revocation store. `unknown_key`, `bad_signature` and `keys_unavailable` are
    /// never reported, `alg_not_allowed` only for an algorithm that is unknown or outside
    /// [`.algorithms(..)`](crate::AuthConfigBuilder::algorithms).
    ///
    /// The diagnosis is then never [valid](super::Diagnosis::is_valid) and never
    /// [`signature_verified`](super::Diagnosis::signature_verified): no
    /// [findings](super::Diagnosis::findings) means nothing is wrong except that the signature
    /// is unknown. Its report and JSON (`checked_against.signature_check: false`) say so. The
    /// configuration still needs keys to build; any will do, they are not used.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use tower_token_auth::diagnose::{diagnose_with, DiagnoseOptions};
    /// use tower_token_auth::testing::TestKey;
    /// use tower_token_auth::{AuthConfig, Keys, Reason};
    ///
    /// // Signed by a key this side does not have.
    /// let token = TestKey::es256()
    ///     .token()
    ///     .issuer("https://i")
    ///     .audience("api")
    ///     .expired_for(Duration::from_secs(600))
    ///     .sign();
    /// let cfg = AuthConfig::builder()
    ///     .keys(Keys::hmac([0u8; 32])) // not used
    ///     .issuer("https://i")
    ///     .audience("api")
    ///     .build()
    ///     .unwrap();
    ///
    /// let options = DiagnoseOptions::new().skip_signature_check();
    /// let d = diagnose_with(&token, &cfg, &options).await;
    /// assert_eq!(d.reason(), Some(Reason::Expired)); // not `alg_not_allowed`
    /// assert!(!d.signature_verified());
    /// assert!(d.to_string().contains("the signature was not checked"));
    /// # }
    /// ```
    #[must_use]
    pub fn skip_signature_check(mut self) -> Self {
        self.skip_signature_check = true;
        self
    }

    /// Checks the token as sent with `Authorization: DPoP` and this DPoP `proof`, for a
    /// request of `method` to `url` (absolute: `https://api.example.com/orders`), as the layer
    /// would: every proof check, with what was expected and what the proof says. The proof
    /// is remembered as used (as by the layer): diagnose a copy, not a proof still to be sent.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower_token_auth::binding::Dpop;
    /// use tower_token_auth::diagnose::{diagnose_with, DiagnoseOptions};
    /// use tower_token_auth::{AuthConfig, Keys, Reason};
    ///
    /// let cfg = AuthConfig::builder()
    ///     .keys(Keys::hmac([7u8; 32]))
    ///     .issuer("https://i")
    ///     .audience("api")
    ///     .dpop(Dpop::allowed())
    ///     .build()
    ///     .unwrap();
    /// let options = DiagnoseOptions::new().dpop("not-a-proof", http::Method::GET, "https://api.example.com/me");
    /// # let token = "x.y.z";
    /// let d = diagnose_with(token, &cfg, &options).await;
    /// # let _ = d;
    /// # }
    /// ```
    #[must_use]
    pub fn dpop(
        mut self,
        proof: impl Into<String>,
        method: http::Method,
        url: impl Into<String>,
    ) -> Self {
        self.dpop = Some((proof.into(), method, url.into()));
        self
    }
}
