//! The signature a receiver checks: `Warship-Signature: t=<unix seconds>,v1=<hex>`,
//! where the hex is HMAC-SHA256 under the endpoint's secret of `<t>.<body>`. The
//! timestamp is signed too, so a receiver can refuse old replays (Stripe's scheme).

use ring::hmac;

/// The header's value for `body` sent at `unix_seconds`.
pub fn signature_header(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    format!("t={unix_seconds},v1={}", sign(secret, unix_seconds, body))
}

/// The hex HMAC-SHA256 of `<t>.<body>`.
pub fn sign(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(unix_seconds.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    hex::encode(context.sign().as_ref())
}

/// What a receiver does: the header parses, its signature matches (compared in
/// constant time), and it is no older than `tolerance_secs` at `now`.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut at = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => at = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(at) = at else { return false };
    if (now - at).abs() > tolerance_secs {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signed = [at.to_string().as_bytes(), b".", body].concat();
    signatures.iter().any(|signature| hmac::verify(&key, &signed, signature).is_ok())
}

/// A new endpoint's secret: 32 random bytes, as the receiver will paste it.
pub fn new_secret() -> String {
    format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_body() {
        // The primitive is HMAC-SHA256 (RFC 4231, test case 2) ...
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            hex::encode(hmac::sign(&key, b"what do ya want for nothing?").as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // ... over "<t>.<body>".
        let by_hand =
            hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"s3cret"), b"1700000000.{\"a\":1}").as_ref());
        assert_eq!(sign("s3cret", 1_700_000_000, br#"{"a":1}"#), by_hand);
        assert_eq!(signature_header("s3cret", 1_700_000_000, br#"{"a":1}"#), format!("t=1700000000,v1={by_hand}"));
    }

    #[test]
    fn a_receiver_accepts_the_header_and_refuses_tampering_other_secrets_and_old_timestamps() {
        let body = br#"{"type":"deploy.succeeded"}"#;
        let header = signature_header("whsec_abc", 1_700_000_000, body);
        assert!(verify("whsec_abc", &header, body, 1_700_000_010, 300));
        assert!(!verify("whsec_abc", &header, br#"{"type":"deploy.failed"}"#, 1_700_000_010, 300));
        assert!(!verify("whsec_other", &header, body, 1_700_000_010, 300));
        assert!(!verify("whsec_abc", &header, body, 1_700_000_400, 300), "older than the tolerance");
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert!(!verify("whsec_abc", &moved, body, 1_700_000_010, 300), "the timestamp is signed too");
        assert!(!verify("whsec_abc", "v1=00", body, 1_700_000_010, 300));
    }

    #[test]
    fn secrets_are_new_each_time() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), "whsec_".len() + 64);
    }
}
