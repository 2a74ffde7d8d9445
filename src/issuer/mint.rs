//! Minting: the signing key given to the builder, the [`Signer`] made from it, random ids,
//! and the claims of each new generation of tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::EllipticCurve;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value};

// The crypto backend selected by the crate's features is the issuer's only use of a
// non-public item of the crate; it is confined to this file so that the issuer could become
// its own crate with one replacement here.
use crate::crypto;
use crate::{ConfigError, Keys};

use super::{
    BuildError, Generation, IssueError, IssuedToken, TokenIssuer, TokenPair, ACCESS_TOKEN_TYPE,
    REFRESH_TOKEN_TYPE,
};

#[derive(Clone)]
pub(super) enum KeyInput {
    Hmac(Vec<u8>),
    RandomHmac,
    RsaPem(Vec<u8>),
    EcPem(Vec<u8>),
    EdPem(Vec<u8>),
}

// ---------------------------------------------------------------------------------------
// Signing key
// ---------------------------------------------------------------------------------------

pub(super) struct Signer {
    pub(super) alg: Algorithm,
    encoding: EncodingKey,
    pub(super) kid: Option<String>,
    /// The verification side, pinned to `alg`.
    pub(super) keys: Keys,
    /// The public key as a JWK (asymmetric keys only).
    pub(super) jwk: Option<Value>,
    label: &'static str,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Signer {
    pub(super) fn new(
        key: KeyInput,
        alg: Option<Algorithm>,
        kid: Option<String>,
    ) -> Result<Signer, BuildError> {
        let utils = &crypto::provider().key_utils;
        let not_for =
            |alg: Algorithm, key: &'static str| BuildError::AlgorithmNotForKey { alg, key };
        let (alg, encoding, jwk, label) = match key {
            KeyInput::Hmac(_) | KeyInput::RandomHmac => {
                let alg = alg.unwrap_or(Algorithm::HS256);
                let need = match alg {
                    Algorithm::HS256 => 32,
                    Algorithm::HS384 => 48,
                    Algorithm::HS512 => 64,
                    other => return Err(not_for(other, "HMAC secret")),
                };
                let secret = match key {
                    KeyInput::Hmac(s) => s,
                    _ => {
                        let mut s = vec![0u8; need];
                        getrandom::fill(&mut s).map_err(|_| BuildError::NoRandomness)?;
                        s
                    }
                };
                if secret.len() < need {
                    return Err(ConfigError::WeakSecret {
                        alg,
                        len: secret.len(),
                        need,
                    }
                    .into());
                }
                let keys = Keys::hmac(&secret).algorithms([alg]);
                let keys = match &kid {
                    Some(k) => keys.kid(k.clone()),
                    None => keys,
                };
                return Ok(Signer {
                    alg,
                    encoding: EncodingKey::from_secret(&secret),
                    kid,
                    keys,
                    jwk: None,
                    label: "HMAC secret",
                });
            }
            KeyInput::RsaPem(pem) => {
                let label = "RSA private key";
                let alg = alg.unwrap_or(Algorithm::RS256);
                // The RSA algorithms of RFC 7518 (the set the crate's `Keys` accept for RSA).
                let rsa = matches!(
                    alg,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                );
                if !rsa {
                    return Err(not_for(alg, label));
                }
                let enc =
                    EncodingKey::from_rsa_pem(&pem).map_err(|_| BuildError::InvalidKey(label))?;
                let (n, e) = (utils.rsa_pub_components_from_private_key)(enc.as_bytes())
                    .map_err(|_| BuildError::InvalidKey(label))?;
                let jwk = serde_json::json!({ "kty": "RSA", "n": b64(&n), "e": b64(&e) });
                (alg, enc, jwk, label)
            }
            KeyInput::EcPem(pem) => {
                let label = "EC private key";
                let enc =
                    EncodingKey::from_ec_pem(&pem).map_err(|_| BuildError::InvalidKey(label))?;
                let found = [Algorithm::ES256, Algorithm::ES384]
                    .into_iter()
                    .find_map(|a| {
                        (utils.ec_pub_components_from_private_key)(enc.as_bytes(), a)
                            .ok()
                            .map(|c| (a, c))
                    });
                let Some((key_alg, (curve, x, y))) = found else {
                    return Err(BuildError::InvalidKey(label));
                };
                if let Some(asked) = alg {
                    if asked != key_alg {
                        return Err(not_for(asked, label));
                    }
                }
                let crv = if curve == EllipticCurve::P256 {
                    "P-256"
                } else {
                    "P-384"
                };
                let jwk =
                    serde_json::json!({ "kty": "EC", "crv": crv, "x": b64(&x), "y": b64(&y) });
                (key_alg, enc, jwk, label)
            }
            KeyInput::EdPem(pem) => {
                let label = "Ed25519 private key";
                if let Some(asked) = alg {
                    if asked != Algorithm::EdDSA {
                        return Err(not_for(asked, label));
                    }
                }
                let enc =
                    EncodingKey::from_ed_pem(&pem).map_err(|_| BuildError::InvalidKey(label))?;
                let x = (utils.ed_pub_components_from_private_key)(
                    enc.as_bytes(),
                    &EllipticCurve::Ed25519,
                )
                .map_err(|_| BuildError::InvalidKey(label))?;
                let jwk = serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(&x) });
                (Algorithm::EdDSA, enc, jwk, label)
            }
        };
        let mut jwk = jwk;
        jwk["alg"] = format!("{alg:?}").into();
        jwk["use"] = "sig".into();
        if let Some(kid) = &kid {
            jwk["kid"] = kid.clone().into();
        }
        Ok(Signer {
            alg,
            encoding,
            kid,
            keys: Keys::jwk(jwk.to_string()),
            jwk: Some(jwk),
            label,
        })
    }

    /// Fails if the key cannot sign with its algorithm, so that `build()` reports it rather
    /// than the first login.
    pub(super) fn check(&self) -> Result<(), BuildError> {
        crypto::sign(self.alg, &self.encoding, b"probe")
            .map(drop)
            .map_err(|_| BuildError::InvalidKey(self.label))
    }

    pub(super) fn sign(
        &self,
        typ: &str,
        claims: &Map<String, Value>,
    ) -> Result<String, IssueError> {
        let mut header = Map::new();
        header.insert("alg".into(), format!("{:?}", self.alg).into());
        header.insert("typ".into(), typ.into());
        if let Some(kid) = &self.kid {
            header.insert("kid".into(), kid.clone().into());
        }
        crate::jws::encode(self.alg, &self.encoding, &header, claims)
            .map_err(|e| IssueError::Crypto(e.to_string()))
    }
}

/// What a new generation carries over from the previous one.
pub(super) struct Session<'a> {
    pub(super) subject: &'a str,
    pub(super) client_id: &'a str,
    pub(super) auth_time: i64,
    pub(super) extra: &'a Map<String, Value>,
    pub(super) family: &'a str,
}

/// A generation ready to be recorded, then signed.
pub(super) struct Planned {
    pub(super) generation: Generation,
    access: Map<String, Value>,
    refresh: Map<String, Value>,
    now: i64,
}

/// Installs the crate's crypto provider as jsonwebtoken's process default (see
/// `crate::crypto`), as building an `AuthConfig` does.
pub(super) fn install_default_provider() {
    crypto::install_default_provider();
}

pub(super) fn random_id() -> Result<String, IssueError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| IssueError::Crypto(e.to_string()))?;
    Ok(b64(&bytes))
}

impl TokenIssuer {
    /// Claims of an access token and its id.
    pub(super) fn access_claims(
        &self,
        subject: &str,
        client_id: &str,
        now: i64,
        exp: i64,
        extra: &Map<String, Value>,
        session: Option<(&str, i64)>,
    ) -> Result<(Map<String, Value>, String), IssueError> {
        let i = &self.inner;
        let jti = random_id()?;
        let mut c = extra.clone();
        c.insert("iss".into(), i.issuer.clone().into());
        c.insert("sub".into(), subject.into());
        c.insert(
            "aud".into(),
            match i.audiences.as_slice() {
                [one] => one.clone().into(),
                many => many.to_vec().into(),
            },
        );
        c.insert("exp".into(), exp.into());
        c.insert("iat".into(), now.into());
        c.insert("nbf".into(), now.into());
        c.insert("jti".into(), jti.clone().into());
        c.insert("client_id".into(), client_id.into());
        if let Some((sid, auth_time)) = session {
            c.insert("sid".into(), sid.into());
            c.insert("auth_time".into(), auth_time.into());
        }
        Ok((c, jti))
    }

    pub(super) fn plan(&self, s: &Session<'_>, now: i64) -> Result<Planned, IssueError> {
        let i = &self.inner;
        let cap = i
            .max_session
            .map_or(i64::MAX, |m| s.auth_time.saturating_add(m));
        let access_exp = now.saturating_add(i.access_ttl).min(cap);
        let refresh_exp = now.saturating_add(i.refresh_ttl).min(cap);
        let (access, access_jti) = self.access_claims(
            s.subject,
            s.client_id,
            now,
            access_exp,
            s.extra,
            Some((s.family, s.auth_time)),
        )?;
        let refresh_jti = random_id()?;
        let mut refresh = Map::new();
        refresh.insert("iss".into(), i.issuer.clone().into());
        refresh.insert("sub".into(), s.subject.into());
        refresh.insert("aud".into(), i.issuer.clone().into());
        refresh.insert("exp".into(), refresh_exp.into());
        refresh.insert("iat".into(), now.into());
        refresh.insert("nbf".into(), now.into());
        refresh.insert("jti".into(), refresh_jti.clone().into());
        refresh.insert("client_id".into(), s.client_id.into());
        refresh.insert("fam".into(), s.family.into());
        refresh.insert("auth_time".into(), s.auth_time.into());
        if !s.extra.is_empty() {
            refresh.insert("ext".into(), Value::Object(s.extra.clone()));
        }
        Ok(Planned {
            generation: Generation::new(
                IssuedToken::new(refresh_jti, refresh_exp),
                IssuedToken::new(access_jti, access_exp),
            ),
            access,
            refresh,
            now,
        })
    }

    pub(super) fn sign_pair(&self, p: Planned, family: String) -> Result<TokenPair, IssueError> {
        let signer = &self.inner.signer;
        let left = |exp: i64| u64::try_from(exp.saturating_sub(p.now)).unwrap_or(0);
        Ok(TokenPair {
            access_token: signer.sign(ACCESS_TOKEN_TYPE, &p.access)?,
            token_type: "Bearer",
            expires_in: left(p.generation.access.expires_at),
            refresh_token: signer.sign(REFRESH_TOKEN_TYPE, &p.refresh)?,
            refresh_expires_in: left(p.generation.refresh.expires_at),
            access_expires_at: p.generation.access.expires_at,
            refresh_expires_at: p.generation.refresh.expires_at,
            session_id: family,
        })
    }
}
