//! Turning key material into verifying keys: PEM and DER checks (public keys only, RSA of
//! 2048 bits or more, EC points on P-256 or P-384, raw Ed25519 keys) and each key's algorithms.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::algs::{hmac_algs, hmac_min_len, AlgSet, HMAC_MIN_LEN, RSA_ALGS};
use super::jwk::{jwk_key, normalize_jwk_alg, parse_jwks, JwksError, JwksOrigin};
use super::set::VerifyingKey;
use super::{KeySpec, Material};
use crate::error::ConfigError;

/// Resolves one key description into verifying keys (a JWK set gives several), with the
/// algorithms each may verify.
pub(super) fn resolve(spec: &KeySpec, out: &mut Vec<VerifyingKey>) -> Result<(), ConfigError> {
    let label = spec.material.label();
    let invalid = |fix: &'static str| ConfigError::InvalidKey { key: label, fix };
    let (key, family): (DecodingKey, Vec<Algorithm>) = match &spec.material {
        Material::Hmac(secret) => {
            let algs = hmac_algs(secret.len());
            if let Some(list) = &spec.algorithms {
                for alg in list {
                    let Some(need) = hmac_min_len(*alg) else {
                        return Err(ConfigError::AlgorithmNotForKey {
                            alg: *alg,
                            key: label,
                        });
                    };
                    if secret.len() < need {
                        return Err(ConfigError::WeakSecret {
                            alg: *alg,
                            len: secret.len(),
                            need,
                        });
                    }
                }
            }
            if algs.is_empty() {
                // Shorter than the shortest HMAC secret (HS256).
                let (alg, need) = HMAC_MIN_LEN[0];
                return Err(ConfigError::WeakSecret {
                    alg,
                    len: secret.len(),
                    need,
                });
            }
            (DecodingKey::from_secret(secret), algs)
        }
        Material::RsaPem(pem) => {
            const FIX: &str = "give an RSA public key PEM (BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY) of 2048 bits or more, not a private key or certificate";
            if !is_public_pem(pem) {
                return Err(invalid(FIX));
            }
            let key = DecodingKey::from_rsa_pem(pem).map_err(|_| invalid(FIX))?;
            check_rsa_der(key.try_get_as_bytes().unwrap_or_default()).map_err(|_| invalid(FIX))?;
            (key, RSA_ALGS.to_vec())
        }
        Material::RsaDer(der) => {
            check_rsa_der(der).map_err(|_| {
                invalid("give the PKCS#1 RSAPublicKey DER of a 2048-bit or larger key")
            })?;
            (DecodingKey::from_rsa_der(der), RSA_ALGS.to_vec())
        }
        Material::EcPem(pem) => {
            if !is_public_pem(pem) {
                return Err(invalid(
                    "give an EC public key PEM (BEGIN PUBLIC KEY), not a private key",
                ));
            }
            let key = DecodingKey::from_ec_pem(pem).map_err(|_| {
                invalid("give an EC public key PEM (BEGIN PUBLIC KEY) on P-256 or P-384")
            })?;
            let alg = ec_alg(key.try_get_as_bytes().unwrap_or_default(), label)?;
            (key, vec![alg])
        }
        // jsonwebtoken's `from_ec_der` / `from_ed_der` take the raw point / raw key, not DER.
        Material::EcPoint(point) => {
            let alg = ec_alg(point, label)?;
            (DecodingKey::from_ec_der(point), vec![alg])
        }
        Material::EdPem(pem) => {
            if !is_public_pem(pem) {
                return Err(invalid(
                    "give an Ed25519 public key PEM (BEGIN PUBLIC KEY), not a private key",
                ));
            }
            let key = DecodingKey::from_ed_pem(pem)
                .map_err(|_| invalid("give an Ed25519 public key PEM (BEGIN PUBLIC KEY)"))?;
            if key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0) != 32 {
                return Err(invalid(
                    "give an Ed25519 public key (32 bytes); Ed448 is not supported",
                ));
            }
            (key, vec![Algorithm::EdDSA])
        }
        Material::EdRaw(raw) => {
            if raw.len() != 32 {
                return Err(invalid("give the raw 32-byte Ed25519 public key"));
            }
            (DecodingKey::from_ed_der(raw), vec![Algorithm::EdDSA])
        }
        Material::Jwk(json) => {
            const FIX: &str = "give one JWK as JSON with kty, and n/e, crv/x/y or k";
            let mut value: serde_json::Value =
                serde_json::from_str(json).map_err(|_| invalid(FIX))?;
            normalize_jwk_alg(&mut value);
            let jwk: Jwk = serde_json::from_value(value).map_err(|_| invalid(FIX))?;
            match jwk_key(&jwk) {
                Ok(Some(mut key)) => {
                    if key.kid.is_none() {
                        key.kid.clone_from(&spec.kid);
                    }
                    narrow(&mut key, &spec.algorithms)?;
                    out.push(key);
                    return Ok(());
                }
                Ok(None) => return Err(invalid("this JWK is for encryption (use: enc) or of an unsupported type; give a signature key")),
                Err(fix) => return Err(invalid(fix)),
            }
        }
        #[cfg(feature = "remote")]
        Material::Remote(_) => return Err(ConfigError::RemoteMixed),
        Material::JwkSet(json) => {
            let parsed = parse_jwks(json.as_bytes(), JwksOrigin::Local).map_err(|e| match e {
                JwksError::NotJson => invalid("give a JWK set as JSON: {\"keys\": [...]}"),
                JwksError::TooMany => invalid("the JWK set has more than 1000 keys"),
                JwksError::Empty => invalid("the JWK set has no usable signature key"),
                JwksError::DuplicateKid => invalid("the JWK set has two keys with the same kid"),
            })?;
            for mut key in parsed.keys {
                narrow(&mut key, &spec.algorithms)?;
                out.push(key);
            }
            return Ok(());
        }
    };
    let algorithms = family_algs(&family, &spec.algorithms, label)?;
    out.push(VerifyingKey {
        kid: spec.kid.clone(),
        key,
        algorithms,
        label,
        prepared: Vec::new(),
    });
    Ok(())
}

fn narrow(key: &mut VerifyingKey, list: &Option<Vec<Algorithm>>) -> Result<(), ConfigError> {
    if let Some(list) = list {
        let wanted = AlgSet::of(list.iter().copied());
        let narrowed = key.algorithms.and(wanted);
        if narrowed.is_empty() {
            return Err(ConfigError::AlgorithmNotForKey {
                alg: list[0],
                key: key.label,
            });
        }
        key.algorithms = narrowed;
    }
    Ok(())
}

fn family_algs(
    family: &[Algorithm],
    narrowed: &Option<Vec<Algorithm>>,
    label: &'static str,
) -> Result<AlgSet, ConfigError> {
    let base = AlgSet::of(family.iter().copied());
    match narrowed {
        None => Ok(base),
        Some(list) => {
            for alg in list {
                if !base.contains(*alg) {
                    return Err(ConfigError::AlgorithmNotForKey {
                        alg: *alg,
                        key: label,
                    });
                }
            }
            Ok(AlgSet::of(list.iter().copied()))
        }
    }
}

fn ec_alg(point: &[u8], label: &'static str) -> Result<Algorithm, ConfigError> {
    match (point.first(), point.len()) {
        (Some(4), 65) => Ok(Algorithm::ES256),
        (Some(4), 97) => Ok(Algorithm::ES384),
        _ => Err(ConfigError::InvalidKey {
            key: label,
            fix: "give an uncompressed P-256 or P-384 public key (SubjectPublicKeyInfo PEM, or 0x04||x||y)",
        }),
    }
}

/// `true` if the PEM text is a public key (not a private key or a certificate).
fn is_public_pem(pem: &[u8]) -> bool {
    let text = String::from_utf8_lossy(pem);
    let text = text.trim_start();
    text.starts_with("-----BEGIN PUBLIC KEY-----")
        || text.starts_with("-----BEGIN RSA PUBLIC KEY-----")
}

/// Parses a PKCS#1 RSAPublicKey with the crypto backend and checks the modulus is at least
/// [`MIN_RSA_BITS`] (RFC 7518 §3.3).
fn check_rsa_der(der: &[u8]) -> Result<(), ()> {
    let (n, _e) = (crate::crypto::provider()
        .key_utils
        .rsa_pub_components_from_public_key)(der)
    .map_err(|_| ())?;
    if modulus_bits(&n) < MIN_RSA_BITS {
        return Err(());
    }
    Ok(())
}

/// The smallest RSA modulus accepted, from PEM, DER and JWKs alike, on both crypto backends.
pub(super) const MIN_RSA_BITS: usize = 2048;

/// The exact bit length of a big-endian unsigned integer (leading zero bytes and bits ignored).
pub(super) fn modulus_bits(n: &[u8]) -> usize {
    match n.iter().position(|b| *b != 0) {
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
        None => 0,
    }
}
