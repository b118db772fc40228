//! `encryptedData` decryption, watermark and rawData signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use wxrest::ApiError;
use wxrest::wechat::WxError;
use wxrest::wechat::crypto::PhoneInfo;
use wxrest::wechat::crypto::{
    self, check_watermark, decrypt, decrypt_for, encrypt, verify_signature,
};

const APPID: &str = "wx4f4bc4dec97d474b";
const KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";

fn user_data(appid: &str) -> Value {
    json!({
        "openId": "oGZUI0egBJY1zhBYw2KhdUfwVJJE",
        "nickName": "Band",
        "gender": 1,
        "watermark": {"timestamp": 1477314187, "appid": appid}
    })
}

#[test]
fn encrypted_data_round_trips() {
    let data = user_data(APPID);
    let encrypted = encrypt(KEY, IV, &data).unwrap();
    assert_eq!(decrypt(KEY, &encrypted, IV).unwrap(), data);
    assert_eq!(decrypt_for(APPID, KEY, &encrypted, IV).unwrap(), data);
}

#[test]
fn decrypts_wechat_official_sample() {
    // The sample from WeChat's "signature, verification and data decryption" docs.
    let encrypted = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
    let iv = "r7BXXKkLb8qrSNn05n0qiA==";
    let value = decrypt_for("wx4f4bc4dec97d474b", KEY, encrypted, iv).unwrap();
    assert_eq!(value["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
}

#[test]
fn wrong_appid_is_watermark_mismatch() {
    let encrypted = encrypt(KEY, IV, &user_data("wx-someone-else")).unwrap();
    assert_eq!(
        decrypt_for(APPID, KEY, &encrypted, IV),
        Err(WxError::WatermarkMismatch)
    );
}

#[test]
fn missing_watermark_is_watermark_mismatch() {
    assert_eq!(
        check_watermark(&json!({"nickName": "x"}), APPID),
        Err(WxError::WatermarkMismatch)
    );
}

#[test]
fn wrong_session_key_is_decrypt_error_for_many_keys() {
    let encrypted = encrypt(KEY, IV, &user_data(APPID)).unwrap();
    // Over many wrong keys some give valid padding by chance: the JSON check catches them.
    for i in 0..600u32 {
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&i.to_be_bytes());
        key[15] = 0xA5;
        let wrong = STANDARD.encode(key);
        assert_eq!(
            decrypt(&wrong, &encrypted, IV),
            Err(WxError::Decrypt),
            "key #{i}"
        );
    }
}

#[test]
fn decrypt_error_maps_to_session_key_stale() {
    let api: ApiError = WxError::Decrypt.into();
    assert_eq!(api.status(), 400);
    assert_eq!(
        api.body(),
        json!({"detail": "The WeChat session has expired; call wx.login() again.", "code": "session_key_stale"})
    );
}

#[test]
fn bad_base64_is_invalid_input() {
    let encrypted = encrypt(KEY, IV, &user_data(APPID)).unwrap();
    assert!(matches!(
        decrypt("not base64!!", &encrypted, IV),
        Err(WxError::InvalidInput(_))
    ));
    assert!(matches!(
        decrypt(KEY, "%%%", IV),
        Err(WxError::InvalidInput(_))
    ));
    assert!(matches!(
        decrypt(KEY, &encrypted, "@@"),
        Err(WxError::InvalidInput(_))
    ));
}

#[test]
fn wrong_lengths_are_invalid_input() {
    let encrypted = encrypt(KEY, IV, &user_data(APPID)).unwrap();
    let short_key = STANDARD.encode([1u8; 8]);
    assert!(matches!(
        decrypt(&short_key, &encrypted, IV),
        Err(WxError::InvalidInput(_))
    ));
    let odd = STANDARD.encode([1u8; 17]);
    assert!(matches!(
        decrypt(KEY, &odd, IV),
        Err(WxError::InvalidInput(_))
    ));
    assert!(matches!(
        decrypt(KEY, "", IV),
        Err(WxError::InvalidInput(_))
    ));
}

#[test]
fn invalid_input_maps_to_invalid_encrypted_data() {
    for err in [
        WxError::InvalidInput("x".into()),
        WxError::WatermarkMismatch,
        WxError::SignatureMismatch,
    ] {
        let api: ApiError = err.into();
        assert_eq!(api.status(), 400);
        assert_eq!(api.code(), "invalid_encrypted_data");
    }
}

#[test]
fn signature_right_is_accepted() {
    let raw = r#"{"nickName":"Band","gender":1}"#;
    let sig = crypto::signature(raw, KEY);
    assert_eq!(sig.len(), 40);
    assert_eq!(verify_signature(raw, KEY, &sig), Ok(()));
    assert_eq!(verify_signature(raw, KEY, &sig.to_uppercase()), Ok(()));
}

#[test]
fn signature_matches_known_sha1() {
    // sha1("abc") = a9993e364706816aba3e25717850c26c9cd0d89d
    assert_eq!(
        crypto::signature("ab", "c"),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
}

#[test]
fn signature_wrong_is_rejected() {
    let raw = r#"{"nickName":"Band","gender":1}"#;
    let sig = crypto::signature(raw, KEY);
    assert_eq!(
        verify_signature(raw, "other-key", &sig),
        Err(WxError::SignatureMismatch)
    );
    assert_eq!(
        verify_signature("{}", KEY, &sig),
        Err(WxError::SignatureMismatch)
    );
    assert_eq!(
        verify_signature(raw, KEY, "abc"),
        Err(WxError::SignatureMismatch)
    );
    assert_eq!(
        verify_signature(raw, KEY, ""),
        Err(WxError::SignatureMismatch)
    );
}

#[test]
fn phone_info_from_decrypted_phone_data() {
    let data = json!({
        "phoneNumber": "13580006666", "purePhoneNumber": "13580006666", "countryCode": "86",
        "watermark": {"appid": APPID, "timestamp": 1637744274}
    });
    let encrypted = encrypt(KEY, IV, &data).unwrap();
    let info = crypto::decrypt_phone_for(APPID, KEY, &encrypted, IV).unwrap();
    assert_eq!(info.pure_phone_number, "13580006666");
    assert_eq!(info.country_code, "86");
    assert_eq!(info.watermark.unwrap().appid, APPID);
    assert!(matches!(
        PhoneInfo::from_value(json!({"nickName": "x"})),
        Err(WxError::InvalidInput(_))
    ));
}
