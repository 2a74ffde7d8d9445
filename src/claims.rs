//! Verified claims: the [`Claims`] extractor and the default [`StandardClaims`].

use std::any::{Any, TypeId};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::{AuthError, Reason};
use crate::grants::Grants;

/// The verified claims of the request's token, as `T`: what the layer puts in the request
/// extensions and what handlers extract (axum's `Extension<T>` is the model).
///
/// The claims are shared (`Arc<T>`): extracting them, in any number of handlers and
/// middleware, clones the `Arc`, never `T`. It dereferences to `T`.
///
/// [`TokenAuthLayer`](crate::TokenAuthLayer) inserts it into the request extensions; in axum
/// handlers it is an extractor (feature `axum`, on by default):
///
/// - `Claims<T>` requires a verified token. Without the layer it answers 500 with a message
///   that says to add it; behind an optional layer with no token it answers 401.
/// - `Option<Claims<T>>` is `None` when no token was sent (optional mode), and `Some` when a
///   valid one was.
///
/// `T` must be the claims type of the layer (default [`StandardClaims`]; see
/// [`TokenAuthLayer::with_claims`](crate::TokenAuthLayer::with_claims)); another type is
/// detected (by `TypeId`) and answered with a 500 that names both types.
///
/// ```
/// use axum::{routing::get, Json, Router};
/// use tower_token_auth::{Claims, StandardClaims};
///
/// async fn me(claims: Claims<StandardClaims>) -> Json<Claims<StandardClaims>> {
///     Json(claims) // serializes as the claims themselves
/// }
///
/// async fn landing(user: Option<Claims<StandardClaims>>) -> String {
///     match user {
///         Some(c) => format!("hello {}", c.sub.as_deref().unwrap_or("?")),
///         None => "hello stranger".into(),
///     }
/// }
///
/// let app: Router = Router::new().route("/me", get(me)).route("/", get(landing));
/// ```
///
/// Outside axum (a tonic handler, a plain `service_fn`), read the same type from the
/// extensions with [`Claims::from_extensions`].
pub struct Claims<T>(pub Arc<T>);

impl<T> Claims<T> {
    /// Claims made by hand, e.g. to call a handler in a unit test.
    ///
    /// ```
    /// use tower_token_auth::{Claims, StandardClaims};
    ///
    /// let claims = Claims::new(StandardClaims::default());
    /// assert_eq!(claims.sub, None);
    /// ```
    pub fn new(claims: T) -> Self {
        Claims(Arc::new(claims))
    }

    /// The claims, without a copy when this is the last reference to them.
    ///
    /// ```
    /// use tower_token_auth::{Claims, StandardClaims};
    ///
    /// let claims: StandardClaims = Claims::new(StandardClaims::default()).into_inner();
    /// # let _ = claims;
    /// ```
    pub fn into_inner(self) -> T
    where
        T: Clone,
    {
        Arc::unwrap_or_clone(self.0)
    }
}

impl<T> Clone for Claims<T> {
    fn clone(&self) -> Self {
        Claims(Arc::clone(&self.0))
    }
}

impl<T> Deref for Claims<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for Claims<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Claims").field(&*self.0).finish()
    }
}

impl<T: PartialEq> PartialEq for Claims<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<T: Serialize> Serialize for Claims<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        T::serialize(&self.0, s)
    }
}

/// The registered claims of RFC 7519, the scopes, and every other claim as JSON.
///
/// ```
/// use tower_token_auth::StandardClaims;
///
/// let c: StandardClaims = serde_json::from_value(serde_json::json!({
///     "sub": "u1", "aud": ["a", "b"], "exp": 2000000000, "scope": "read write",
///     "tenant": "acme"
/// })).unwrap();
/// assert_eq!(c.aud, vec!["a", "b"]);
/// assert_eq!(c.scope.as_deref(), Some("read write")); // scopes and roles: `Grants`
/// assert_eq!(c.extra["tenant"], "acme");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StandardClaims {
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audiences (`aud` may be a string or an array; both become a list).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Not before, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Space-separated scopes (OAuth 2.0 `scope`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Scopes as Microsoft Entra and others send them (`scp`, a string or an array).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scp: Vec<String>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// Written by hand as a map visitor: the derived version with `flatten` and `untagged` helpers
// buffers every claim once more, and this runs on every accepted request.
impl<'de> Deserialize<'de> for StandardClaims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(StandardClaimsVisitor)
    }
}

struct StandardClaimsVisitor;

/// `aud` or `scp`: a string or an array of strings (null: none).
fn strings<E: serde::de::Error>(k: &str, v: Value) -> Result<Vec<String>, E> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s]),
        Value::Array(list) => list
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(E::custom(format_args!(
                    "`{k}` must be a string or an array of strings"
                ))),
            })
            .collect(),
        _ => Err(E::custom(format_args!(
            "`{k}` must be a string or an array of strings"
        ))),
    }
}

impl<'de> serde::de::Visitor<'de> for StandardClaimsVisitor {
    type Value = StandardClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<StandardClaims, A::Error> {
        use serde::de::Error;
        let mut c = StandardClaims::default();
        while let Some(key) = m.next_key::<String>()? {
            match key.as_str() {
                "iss" => c.iss = m.next_value()?,
                "sub" => c.sub = m.next_value()?,
                "jti" => c.jti = m.next_value()?,
                "scope" => c.scope = m.next_value()?,
                "aud" => c.aud = strings("aud", m.next_value()?)?,
                "scp" => {
                    c.scp = strings::<A::Error>("scp", m.next_value()?)?
                        .iter()
                        .flat_map(|s| s.split_ascii_whitespace())
                        .map(str::to_owned)
                        .collect()
                }
                "exp" | "nbf" | "iat" => {
                    let v: Value = m.next_value()?;
                    let date = match v {
                        Value::Null => None,
                        v => Some(crate::clock::numeric_date(&v).ok_or_else(|| {
                            A::Error::custom(format_args!(
                                "`{key}` is not a NumericDate within years 1 to 9999"
                            ))
                        })?),
                    };
                    match key.as_str() {
                        "exp" => c.exp = date,
                        "nbf" => c.nbf = date,
                        _ => c.iat = date,
                    }
                }
                _ => {
                    let v: Value = m.next_value()?;
                    c.extra.insert(key, v);
                }
            }
        }
        Ok(c)
    }
}

/// The layer's settings that reach the request, built once per layer and shared.
#[derive(Debug)]
pub(crate) struct LayerInfo {
    /// The claims type the layer deserializes into: compared by `TypeId` (two types may share
    /// a name), named in messages. Read by the axum extractors.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) claims_id: TypeId,
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) claims_type: &'static str,
    /// The configuration's realm and RFC 9728 metadata URL: every responder reads them here
    /// (`response::ChallengeParams`), so they are set in one place, the configuration.
    pub(crate) realm: Option<Arc<str>>,
    pub(crate) resource_metadata: Option<Arc<str>>,
    /// With DPoP: the accepted proof algorithms (the `DPoP` challenge's `algs`), and whether
    /// only DPoP is accepted.
    pub(crate) dpop_algs: Option<Arc<str>>,
    pub(crate) dpop_required: bool,
}

/// The one value the layer puts in the request extensions: its settings, and the verified
/// token when there is one (its claims as the layer's `T`, shared, and its grants). Extractors
/// tell "no layer" from "no token" by it, and find a wrong claims type by `TypeId`.
#[derive(Clone)]
pub(crate) struct LayerMarker {
    pub(crate) layer: Arc<LayerInfo>,
    pub(crate) verified: Option<(Arc<dyn Any + Send + Sync>, Grants)>,
}

impl fmt::Debug for LayerMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerMarker")
            .field("claims_type", &self.layer.claims_type)
            .field("authenticated", &self.verified.is_some())
            .finish()
    }
}

impl<T: Send + Sync + 'static> Claims<T> {
    /// The claims of the request's verified token, read from its extensions: how a tonic
    /// handler or a plain tower service reads what axum handlers extract. `None` without a
    /// verified token, or when `T` is not the layer's claims type.
    ///
    /// ```
    /// use tower_token_auth::{Claims, StandardClaims};
    ///
    /// fn subject(req: &http::Request<()>) -> Option<String> {
    ///     let claims = Claims::<StandardClaims>::from_extensions(req.extensions())?;
    ///     claims.sub.clone()
    /// }
    /// # assert_eq!(subject(&http::Request::new(())), None);
    /// ```
    pub fn from_extensions(extensions: &http::Extensions) -> Option<Claims<T>> {
        let (claims, _) = extensions.get::<LayerMarker>()?.verified.as_ref()?;
        Arc::clone(claims).downcast::<T>().ok().map(Claims)
    }
}

impl Grants {
    /// The grants of the request's verified token, read from its extensions (outside axum;
    /// in handlers, extract [`Grants`]).
    ///
    /// ```
    /// use tower_token_auth::Grants;
    ///
    /// fn is_admin(req: &http::Request<()>) -> bool {
    ///     Grants::from_extensions(req.extensions()).is_some_and(|g| g.has_role("admin"))
    /// }
    /// # assert!(!is_admin(&http::Request::new(())));
    /// ```
    pub fn from_extensions(extensions: &http::Extensions) -> Option<&Grants> {
        let (_, grants) = extensions.get::<LayerMarker>()?.verified.as_ref()?;
        Some(grants)
    }
}

/// The error for a request without a verified token: the token error that
/// `anonymous_on_invalid` let through, or `missing`.
pub(crate) fn unauthenticated(ext: &http::Extensions) -> AuthError {
    ext.get::<AuthError>()
        .cloned()
        .unwrap_or_else(|| AuthError::new(Reason::Missing))
}

#[cfg(feature = "axum")]
mod extract {
    use std::sync::Arc;

    use super::{unauthenticated, Claims, LayerMarker};
    use crate::error::{AuthError, Reason};
    use crate::grants::Grants;
    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use http::request::Parts;

    /// Why [`Claims`] could not be extracted.
    ///
    /// It is an axum response: 401 with the default problem response for `Unauthenticated`,
    /// 500 with the message for the others.
    #[derive(Debug)]
    #[non_exhaustive]
    pub enum ClaimsRejection {
        /// No [`TokenAuthLayer`](crate::TokenAuthLayer) ran before the handler (500).
        MissingLayer {
            /// The type asked for.
            wanted: &'static str,
        },
        /// The layer was built for another claims type (500).
        WrongType {
            /// The type asked for.
            wanted: &'static str,
            /// The layer's claims type.
            layer: &'static str,
        },
        /// The layer is optional and no token was sent, but the handler requires one (401).
        Unauthenticated {
            /// The `missing` error.
            error: AuthError,
            /// The layer's realm.
            realm: Option<std::sync::Arc<str>>,
            /// The layer's RFC 9728 metadata URL.
            resource_metadata: Option<std::sync::Arc<str>>,
        },
    }

    impl std::fmt::Display for ClaimsRejection {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                ClaimsRejection::MissingLayer { wanted } => write!(
                    f,
                    "Claims<{wanted}> was extracted but no TokenAuthLayer ran for this route: add .layer(TokenAuthLayer::new(config)) to the router or route"
                ),
                ClaimsRejection::WrongType { wanted, layer } => write!(
                    f,
                    "Claims<{wanted}> was extracted but the TokenAuthLayer of this route is built for Claims<{layer}>: use TokenAuthLayer::new(config).with_claims::<{wanted}>() or extract Claims<{layer}>"
                ),
                ClaimsRejection::Unauthenticated { error, .. } => write!(f, "{error}"),
            }
        }
    }

    impl std::error::Error for ClaimsRejection {}

    fn lookup<T: Send + Sync + 'static>(
        parts: &Parts,
    ) -> Result<Option<Claims<T>>, ClaimsRejection> {
        let wanted = std::any::type_name::<T>();
        let Some(m) = parts.extensions.get::<LayerMarker>() else {
            return Err(ClaimsRejection::MissingLayer { wanted });
        };
        let wrong = || ClaimsRejection::WrongType {
            wanted,
            layer: m.layer.claims_type,
        };
        match &m.verified {
            Some((claims, _)) => Arc::clone(claims)
                .downcast::<T>()
                .map(|c| Some(Claims(c)))
                .map_err(|_| wrong()),
            None if m.layer.claims_id != std::any::TypeId::of::<T>() => Err(wrong()),
            None => Ok(None),
        }
    }

    impl<S, T> FromRequestParts<S> for Claims<T>
    where
        S: Send + Sync,
        T: Send + Sync + 'static,
    {
        type Rejection = ClaimsRejection;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            match lookup::<T>(parts)? {
                Some(c) => Ok(c),
                None => {
                    let layer = parts
                        .extensions
                        .get::<LayerMarker>()
                        .map(|m| Arc::clone(&m.layer));
                    Err(ClaimsRejection::Unauthenticated {
                        error: AuthError::new(Reason::Missing),
                        realm: layer.as_ref().and_then(|l| l.realm.clone()),
                        resource_metadata: layer.and_then(|l| l.resource_metadata.clone()),
                    })
                }
            }
        }
    }

    impl<S, T> OptionalFromRequestParts<S> for Claims<T>
    where
        S: Send + Sync,
        T: Send + Sync + 'static,
    {
        type Rejection = ClaimsRejection;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            lookup::<T>(parts)
        }
    }

    /// `Grants` as an axum extractor: the scopes and roles of the verified token.
    ///
    /// Without grants (no token behind an optional `TokenAuthLayer`, or no `TokenAuthLayer`
    /// at all) it rejects with a 401 `missing` [`AuthError`] (behind
    /// [`anonymous_on_invalid`](crate::TokenAuthLayer::anonymous_on_invalid), with the
    /// token's error). `Option<Grants>` is `None` instead.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_token_auth::{AuthError, Grants};
    ///
    /// async fn orders(grants: Grants) -> Result<String, AuthError> {
    ///     grants.require_all(["orders:read"])?;
    ///     Ok(format!("{} scopes", grants.scopes().len()))
    /// }
    ///
    /// async fn landing(grants: Option<Grants>) -> &'static str {
    ///     match grants {
    ///         Some(g) if g.has_role("admin") => "hello admin",
    ///         Some(_) => "hello user",
    ///         None => "hello stranger",
    ///     }
    /// }
    ///
    /// let app: Router = Router::new().route("/orders", get(orders)).route("/", get(landing));
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    impl<S: Send + Sync> FromRequestParts<S> for Grants {
        type Rejection = AuthError;

        async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AuthError> {
            if let Some(g) = Grants::from_extensions(&parts.extensions) {
                return Ok(g.clone());
            }
            if parts.extensions.get::<LayerMarker>().is_none() {
                tracing::error!(
                    target: "tower_token_auth",
                    "Grants was extracted but no TokenAuthLayer ran for this route: add .layer(TokenAuthLayer::new(config)) to the router or route"
                );
            }
            Err(unauthenticated(&parts.extensions))
        }
    }

    /// `Option<Grants>`: `None` when the request carries no verified token.
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    impl<S: Send + Sync> OptionalFromRequestParts<S> for Grants {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(Grants::from_extensions(&parts.extensions).cloned())
        }
    }
}

#[cfg(feature = "axum")]
pub use extract::ClaimsRejection;
