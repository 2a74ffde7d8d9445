//! JSON Web Keys (RFC 7517): one JWK or a JWK set into verifying keys, and what a published
//! (remote) set may not hold.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::algs::{hmac_algs, AlgSet, RSA_ALGS};
use super::material::{modulus_bits, MIN_RSA_BITS};
use super::set::VerifyingKey;

/// At most this many keys are read from one JWK set.
pub(crate) const MAX_JWKS_KEYS: usize = 1000;

/// Why a JWK set could not be used.
#[derive(Debug)]
pub(crate) enum JwksError {
    NotJson,
    TooMany,
    Empty,
    DuplicateKid,
}

/// Where a JWK set comes from, which decides what it may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JwksOrigin {
    /// Given by the user (`Keys::jwks_json`): may hold the user's own `oct` secret.
    Local,
    /// Fetched from a URL. A published key set is public by design: a symmetric key in it
    /// would let anyone who downloads it sign tokens, so `oct` keys and keys with private
    /// members are skipped.
    Remote,
}

/// The usable keys of a JWK set, and how many of its keys were skipped.
pub(crate) struct ParsedJwks {
    pub(crate) keys: Vec<VerifyingKey>,
    /// Reported by remote sets (`KeyStatus::skipped`); local sets log each skipped key.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) skipped: usize,
}

/// Private members of RSA, EC and OKP JWKs (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Parses a JWK set, skipping keys that cannot verify signatures (and, from a remote set,
/// keys that must never come from one).
pub(crate) fn parse_jwks(bytes: &[u8], origin: JwksOrigin) -> Result<ParsedJwks, JwksError> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(bytes).map_err(|_| JwksError::NotJson)?;
    if set.keys.len() > MAX_JWKS_KEYS {
        return Err(JwksError::TooMany);
    }
    let mut out: Vec<VerifyingKey> = Vec::with_capacity(set.keys.len());
    let mut skipped = 0;
    let mut seen = std::collections::HashSet::new();
    for mut value in set.keys {
        if origin == JwksOrigin::Remote {
            if let Some(why) = refused_in_public_set(&value) {
                let kid = value.get("kid").and_then(serde_json::Value::as_str);
                tracing::warn!(
                    target: "tower_token_auth::keys",
                    kid = kid.map(crate::error::cap).as_deref(),
                    why,
                    "JWK skipped: a published key set must hold public keys only"
                );
                skipped += 1;
                continue;
            }
        }
        normalize_jwk_alg(&mut value);
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            tracing::warn!("JWK skipped: not a valid JWK");
            skipped += 1;
            continue;
        };
        match jwk_key(&jwk) {
            Ok(Some(key)) => {
                if let Some(kid) = &key.kid {
                    if !seen.insert(kid.clone()) {
                        return Err(JwksError::DuplicateKid);
                    }
                }
                out.push(key);
            }
            Ok(None) => {
                tracing::debug!(kid = ?jwk.common.key_id, "JWK skipped: not a signature key");
                skipped += 1;
            }
            Err(why) => {
                tracing::warn!(kid = ?jwk.common.key_id, why, "JWK skipped");
                skipped += 1;
            }
        }
    }
    if out.is_empty() {
        return Err(JwksError::Empty);
    }
    Ok(ParsedJwks { keys: out, skipped })
}

/// Why a key of a published set is refused: a symmetric key, or private key material.
fn refused_in_public_set(jwk: &serde_json::Value) -> Option<&'static str> {
    if jwk.get("kty").and_then(serde_json::Value::as_str) == Some("oct") || jwk.get("k").is_some() {
        return Some("symmetric (oct) key in a public key set");
    }
    if PRIVATE_MEMBERS.iter().any(|m| jwk.get(m).is_some()) {
        return Some("private key members in a public key set");
    }
    None
}

/// RFC 9864 names the Ed25519 algorithm `Ed25519`; jsonwebtoken knows it as `EdDSA`.
pub(super) fn normalize_jwk_alg(value: &mut serde_json::Value) {
    if value.get("alg").and_then(serde_json::Value::as_str) == Some("Ed25519") {
        value["alg"] = "EdDSA".into();
    }
}

/// Turns a JWK into a verifying key; `Ok(None)` for keys that are not for signatures.
pub(super) fn jwk_key(jwk: &Jwk) -> Result<Option<VerifyingKey>, &'static str> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    let pinned: Option<Algorithm> = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256) => {
            return Ok(None)
        }
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => return Ok(None),
        Some(other) => match Algorithm::try_from(other) {
            Ok(a) => Some(a),
            Err(_) => return Ok(None),
        },
    };
    let (key, family, label): (DecodingKey, Vec<Algorithm>, &'static str) = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            // The same minimum as PEM and DER keys: the rust-crypto backend would verify with
            // a 1024-bit key.
            let n = URL_SAFE_NO_PAD
                .decode(&p.n)
                .map_err(|_| "RSA JWK n is not base64url")?;
            if modulus_bits(&n) < MIN_RSA_BITS {
                return Err("RSA JWK modulus is shorter than 2048 bits");
            }
            (
                DecodingKey::from_rsa_components(&p.n, &p.e)
                    .map_err(|_| "RSA JWK n/e are not base64url")?,
                RSA_ALGS.to_vec(),
                "RSA JWK",
            )
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let alg = match p.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err("EC JWK curve must be P-256 or P-384"),
            };
            let key = DecodingKey::from_ec_components(&p.x, &p.y)
                .map_err(|_| "EC JWK x/y are not base64url")?;
            let want = if alg == Algorithm::ES256 { 65 } else { 97 };
            if key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0) != want {
                return Err("EC JWK x/y have the wrong length for the curve");
            }
            (key, vec![alg], "EC JWK")
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err("OKP JWK curve must be Ed25519");
            }
            let key =
                DecodingKey::from_ed_components(&p.x).map_err(|_| "OKP JWK x is not base64url")?;
            if key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0) != 32 {
                return Err("OKP JWK x must be 32 bytes");
            }
            (key, vec![Algorithm::EdDSA], "Ed25519 JWK")
        }
        AlgorithmParameters::OctetKey(_) => {
            let key = DecodingKey::from_jwk(jwk).map_err(|_| "oct JWK k is not base64url")?;
            let len = key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
            let algs = hmac_algs(len);
            if algs.is_empty() {
                return Err("oct JWK secret is shorter than 32 bytes");
            }
            (key, algs, "oct JWK")
        }
        _ => return Ok(None),
    };
    let family_set = AlgSet::of(family);
    let algorithms = match pinned {
        Some(alg) if family_set.contains(alg) => AlgSet::of([alg]),
        Some(_) => return Err("JWK alg does not match its key type"),
        None => family_set,
    };
    Ok(Some(VerifyingKey {
        kid: jwk.common.key_id.clone(),
        key,
        algorithms,
        label,
        prepared: Vec::new(),
    }))
}

/// A key sent by a client (a DPoP proof's `jwk` header): public only, for signatures, and its
/// RFC 7638 thumbprint. The rules of a published set apply: no `oct` key, no private member.
pub(crate) fn client_jwk(
    value: &serde_json::Value,
) -> Result<(VerifyingKey, String), &'static str> {
    if !value.is_object() {
        return Err("jwk is not a JSON object");
    }
    if let Some(why) = refused_in_public_set(value) {
        return Err(why);
    }
    let thumbprint = thumbprint(value)?;
    let mut value = value.clone();
    normalize_jwk_alg(&mut value);
    let jwk = serde_json::from_value::<Jwk>(value).map_err(|_| "jwk is not a valid JWK")?;
    match jwk_key(&jwk)? {
        Some(key) => Ok((key, thumbprint)),
        None => Err("jwk is not a signature key"),
    }
}

/// The RFC 7638 thumbprint of a public JWK: base64url SHA-256 of its required members in
/// lexicographic order, as JSON without whitespace.
pub(crate) fn thumbprint(jwk: &serde_json::Value) -> Result<String, &'static str> {
    let members: &[&str] = match jwk.get("kty").and_then(serde_json::Value::as_str) {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        Some("OKP") => &["crv", "kty", "x"],
        _ => return Err("jwk kty must be EC, RSA or OKP"),
    };
    // Written by hand in the listed (lexicographic) order: a map's order depends on
    // serde_json's features.
    let mut json = String::from("{");
    for (i, m) in members.iter().enumerate() {
        let Some(serde_json::Value::String(v)) = jwk.get(*m) else {
            return Err("jwk lacks a required member");
        };
        if i > 0 {
            json.push(',');
        }
        json.push_str(&serde_json::to_string(m).map_err(|_| "jwk")?);
        json.push(':');
        json.push_str(&serde_json::to_string(v).map_err(|_| "jwk")?);
    }
    json.push('}');
    let json = json.into_bytes();
    Ok(URL_SAFE_NO_PAD.encode(crate::crypto::sha256(&json)))
}
