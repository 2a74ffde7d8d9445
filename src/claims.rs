//! Verified claims: the [`Claims`] extractor and the default [`StandardClaims`].

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

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
/// extensions:
///
/// ```
/// use tower_token_auth::{Claims, StandardClaims};
///
/// fn subject(req: &http::Request<()>) -> Option<String> {
///     let claims = req.extensions().get::<Claims<StandardClaims>>()?;
///     claims.sub.clone()
/// }
/// # assert_eq!(subject(&http::Request::new(())), None);
/// ```
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

/// Put in the request extensions by the layer, so extractors can tell "no layer" from "no
/// token" and name the claims type the layer was built for.
#[derive(Clone)]
pub(crate) struct LayerMarker {
    /// The claims type the layer deserializes into: compared by `TypeId` (two types may share
    /// a name), named in messages. Read by the axum extractors.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) claims_id: std::any::TypeId,
    pub(crate) claims_type: &'static str,
    pub(crate) authenticated: bool,
    /// The configuration's realm and RFC 9728 metadata URL: every responder reads them here
    /// (`response::ChallengeParams`), so they are set in one place, the configuration.
    pub(crate) realm: Option<Arc<str>>,
    pub(crate) resource_metadata: Option<Arc<str>>,
}

impl fmt::Debug for LayerMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerMarker")
            .field("claims_type", &self.claims_type)
            .field("authenticated", &self.authenticated)
            .finish()
    }
}

#[cfg(feature = "axum")]
mod extract {
    use super::{Claims, LayerMarker};
    use crate::error::{AuthError, Reason};
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
        if let Some(c) = parts.extensions.get::<Claims<T>>() {
            return Ok(Some(c.clone()));
        }
        match parts.extensions.get::<LayerMarker>() {
            None => Err(ClaimsRejection::MissingLayer { wanted }),
            Some(m) if m.authenticated => Err(ClaimsRejection::WrongType {
                wanted,
                layer: m.claims_type,
            }),
            Some(m) if m.claims_id != std::any::TypeId::of::<T>() => {
                Err(ClaimsRejection::WrongType {
                    wanted,
                    layer: m.claims_type,
                })
            }
            Some(_) => Ok(None),
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
                    let marker = parts.extensions.get::<LayerMarker>();
                    Err(ClaimsRejection::Unauthenticated {
                        error: AuthError::new(Reason::Missing),
                        realm: marker.and_then(|m| m.realm.clone()),
                        resource_metadata: marker.and_then(|m| m.resource_metadata.clone()),
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
}

#[cfg(feature = "axum")]
pub use extract::ClaimsRejection;
