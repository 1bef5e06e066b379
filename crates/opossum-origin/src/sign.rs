//! Signed URLs: `?sig=` carries base64url (no padding) of HMAC-SHA256 over the request path.
//! Several keys may be configured, so a key can be rotated without breaking published URLs:
//! sign with the new one, keep accepting the old one until its URLs are gone.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The signature of `path` (for example `/v1/img/thumbnail:200/photos/cat.jpg`) under `key`.
pub fn sign(key: &[u8], path: &str) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac takes any key length");
    mac.update(path.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// True when `signature` is `path`'s under any of `keys` (compared in constant time).
pub fn verify(keys: &[Vec<u8>], path: &str, signature: &str) -> bool {
    let Ok(given) = URL_SAFE_NO_PAD.decode(signature.as_bytes()) else {
        return false;
    };
    keys.iter().any(|key| {
        let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
            return false;
        };
        mac.update(path.as_bytes());
        mac.verify_slice(&given).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_under_any_configured_key() {
        let path = "/v1/img/thumbnail:200/photos/cat.jpg";
        let old = b"old secret".to_vec();
        let new = b"new secret".to_vec();
        let signature = sign(&old, path);
        assert_eq!(signature.len(), 43, "32 bytes, base64url without padding");
        assert!(verify(&[new.clone(), old.clone()], path, &signature));
        assert!(!verify(std::slice::from_ref(&new), path, &signature));
        assert!(!verify(
            std::slice::from_ref(&old),
            "/v1/img/thumbnail:201/photos/cat.jpg",
            &signature
        ));
        assert!(!verify(&[old], path, "not base64!"));
        // RFC 4231 test case 2.
        let mac = sign(b"Jefe", "what do ya want for nothing?");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(mac).unwrap(),
            [
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
                0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
                0x64, 0xec, 0x38, 0x43
            ]
        );
    }
}
