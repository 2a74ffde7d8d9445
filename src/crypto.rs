//! The crypto backend: which jsonwebtoken `CryptoProvider` verifies and signs.
//!
//! jsonwebtoken 11 picks its process-wide provider from its own cargo features and panics at
//! run time when both `aws_lc_rs` and `rust_crypto` are on (as with `--all-features`). This
//! crate never relies on that global: it calls the provider chosen by its own features
//! directly, preferring aws-lc-rs when both are enabled.

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "tower-token-auth needs a crypto backend: enable the `aws-lc-rs` feature (the default) or `rust-crypto`"
);

use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{Algorithm, DecodingKey};

/// The provider this crate uses.
pub(crate) fn provider() -> &'static CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    {
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
    }
}

/// When both backends are compiled in, jsonwebtoken's own `encode`/`decode` would panic for
/// lack of a process default; install ours so code of the application that calls jsonwebtoken
/// directly keeps working. A provider installed earlier by the application is kept.
pub(crate) fn install_default_provider() {
    #[cfg(all(feature = "aws-lc-rs", feature = "rust-crypto"))]
    {
        let _ = provider().install_default();
    }
}

/// Why a signature did not verify.
pub(crate) enum VerifyError {
    /// The key cannot be used with this algorithm (a configuration problem).
    Key,
    /// The signature is wrong.
    Signature,
}

/// A verifier built once per key and algorithm (aws-lc-rs backend): the HMAC key schedule or
/// the parsed public key, instead of rebuilding them on every request as jsonwebtoken's
/// `verify` does.
#[cfg(feature = "aws-lc-rs")]
pub(crate) enum Prepared {
    Hmac(Box<aws_lc_rs::hmac::Key>),
    Public(aws_lc_rs::signature::ParsedPublicKey),
}

/// No prepared verifiers on the pure-Rust backend.
#[cfg(not(feature = "aws-lc-rs"))]
pub(crate) enum Prepared {}

/// Prepares a verifier for `alg` with `key`, when the backend can.
pub(crate) fn prepare(alg: Algorithm, key: &DecodingKey) -> Option<Prepared> {
    #[cfg(feature = "aws-lc-rs")]
    {
        use aws_lc_rs::{hmac, signature as sig};
        let bytes = key.try_get_as_bytes().ok()?;
        let public = |a: &'static dyn sig::VerificationAlgorithm| {
            sig::ParsedPublicKey::new(a, bytes)
                .ok()
                .map(Prepared::Public)
        };
        match alg {
            Algorithm::HS256 => Some(Prepared::Hmac(Box::new(hmac::Key::new(
                hmac::HMAC_SHA256,
                bytes,
            )))),
            Algorithm::HS384 => Some(Prepared::Hmac(Box::new(hmac::Key::new(
                hmac::HMAC_SHA384,
                bytes,
            )))),
            Algorithm::HS512 => Some(Prepared::Hmac(Box::new(hmac::Key::new(
                hmac::HMAC_SHA512,
                bytes,
            )))),
            Algorithm::RS256 => public(&sig::RSA_PKCS1_2048_8192_SHA256),
            Algorithm::RS384 => public(&sig::RSA_PKCS1_2048_8192_SHA384),
            Algorithm::RS512 => public(&sig::RSA_PKCS1_2048_8192_SHA512),
            Algorithm::PS256 => public(&sig::RSA_PSS_2048_8192_SHA256),
            Algorithm::PS384 => public(&sig::RSA_PSS_2048_8192_SHA384),
            Algorithm::PS512 => public(&sig::RSA_PSS_2048_8192_SHA512),
            Algorithm::ES256 => public(&sig::ECDSA_P256_SHA256_FIXED),
            Algorithm::ES384 => public(&sig::ECDSA_P384_SHA384_FIXED),
            Algorithm::EdDSA => public(&sig::ED25519),
            _ => None,
        }
    }
    #[cfg(not(feature = "aws-lc-rs"))]
    {
        let _ = (alg, key);
        None
    }
}

/// Verifies `signature` (raw bytes) over `message` with `key` and `alg`, using a prepared
/// verifier when there is one.
pub(crate) fn verify(
    alg: Algorithm,
    key: &DecodingKey,
    prepared: Option<&Prepared>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    #[cfg(feature = "aws-lc-rs")]
    if let Some(p) = prepared {
        let ok = match p {
            // Constant-time tag comparison inside aws-lc.
            Prepared::Hmac(k) => aws_lc_rs::hmac::verify(k, message, signature).is_ok(),
            Prepared::Public(k) => k.verify_sig(message, signature).is_ok(),
        };
        return if ok {
            Ok(())
        } else {
            Err(VerifyError::Signature)
        };
    }
    let _ = prepared;
    let verifier = (provider().verifier_factory)(&alg, key).map_err(|_| VerifyError::Key)?;
    // jsonwebtoken's Verifier takes the signature as a Vec.
    let signature = signature.to_vec();
    verifier
        .verify(message, &signature)
        .map_err(|_| VerifyError::Signature)
}

/// Signs `message` (for the `test-util` helpers and the `issuer`).
#[cfg(any(feature = "test-util", feature = "issuer"))]
pub(crate) fn sign(
    alg: Algorithm,
    key: &jsonwebtoken::EncodingKey,
    message: &[u8],
) -> Result<Vec<u8>, jsonwebtoken::errors::Error> {
    let signer = (provider().signer_factory)(&alg, key)?;
    signer.try_sign(message).map_err(|e| {
        jsonwebtoken::errors::new_error(jsonwebtoken::errors::ErrorKind::Signing(e.to_string()))
    })
}

/// An HMAC-SHA256 key for keyed hashes that name a secret (an opaque token in the
/// introspection cache) without storing it. With aws-lc-rs the key schedule is computed once;
/// the pure-Rust backend goes through jsonwebtoken's provider on each call.
#[cfg(feature = "remote")]
pub(crate) struct DigestKey {
    #[cfg(feature = "aws-lc-rs")]
    key: aws_lc_rs::hmac::Key,
    #[cfg(not(feature = "aws-lc-rs"))]
    raw: [u8; 32],
}

#[cfg(feature = "remote")]
impl DigestKey {
    pub(crate) fn new(raw: &[u8; 32]) -> Self {
        DigestKey {
            #[cfg(feature = "aws-lc-rs")]
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, raw),
            #[cfg(not(feature = "aws-lc-rs"))]
            raw: *raw,
        }
    }

    /// HMAC-SHA256 of `message`.
    pub(crate) fn digest(&self, message: &[u8]) -> Option<[u8; 32]> {
        #[cfg(feature = "aws-lc-rs")]
        {
            aws_lc_rs::hmac::sign(&self.key, message)
                .as_ref()
                .try_into()
                .ok()
        }
        #[cfg(not(feature = "aws-lc-rs"))]
        {
            let key = jsonwebtoken::EncodingKey::from_secret(&self.raw);
            let signer = (provider().signer_factory)(&Algorithm::HS256, &key).ok()?;
            signer.try_sign(message).ok()?.try_into().ok()
        }
    }
}

#[cfg(all(test, feature = "remote"))]
mod tests {
    use super::DigestKey;

    #[test]
    fn the_keyed_digest_is_hmac_sha256_on_either_backend() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let digest = DigestKey::new(&key).digest(b"an opaque token").unwrap();
        // Python: hmac.new(bytes(range(32)), b"an opaque token", hashlib.sha256).hexdigest()
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "85a80f515927d542ea27c889815d940ad54ab5e115a1bbcb0c9acd29c62ac223"
        );
    }
}

/// SHA-256, through the provider (either backend).
pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    (provider().key_utils.compute_digest)(data, jsonwebtoken::jwk::ThumbprintHash::SHA256)
        .unwrap_or_default()
}
