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

/// Verifies `signature` (raw bytes) over `message` with `key` and `alg`.
pub(crate) fn verify(
    alg: Algorithm,
    key: &DecodingKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
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
