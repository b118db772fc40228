//! WxPayClient and the PayNotification extractor against FakeWeChatPay over real HTTP:
//! prepay and `wx.requestPayment`, query/close/refund, forged and failing answers, and
//! notifications (valid, forged, probes, replays, wrong keys, oversized), with keys kept out of
//! every `Debug` and error.
#![cfg(feature = "fake-pay")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRef, State};
use axum::response::IntoResponse;
use axum::routing::post;
use http::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt;
use wxrest::pay::{
    FakePayError, FakeWeChatPay, FakeWeChatPayBuilder, JsapiOrder, MAX_NOTIFICATION_BYTES,
    NotifyResource, PayError, PayNotification, PayScript, RefundRequest, RefundStatus,
    SignedNotification, TradeState, WxPayClient, WxPayConfig,
};

const APIV3_KEY: &str = "apiv3-secret-key-0123456789abcde";
const BUYER: &str = "o-buyer-openid";

/// A merchant key the tests know (to check it never leaks): a 2048-bit test key made with
/// `openssl genpkey -algorithm RSA`, used nowhere else.
const TEST_MERCHANT_KEY_PEM: &str = r"-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCqLhIHplTiKG+5
wCCr78FI6hUUE6D4LVHt0p5JgKRwzq7V9v6rX08wyC1L9wEY9DuNVH2NsqN84hPE
Yq9601yRpI9cu/FOuwiixA+Ggz1Hp/cFVIaJLQMI97GFCMzL/fOROFygFOLKllJb
77v31OGwf4v7ACnGuYF5mbUZZk7FpK8zc05SLdSILn4FOXVMiEmpAldu/HbEuOcK
TEGhNm5BtQgpt5ERcPNTSnJVOvnN5p2/ePyB4JBpjf0S031lUbFvn92SXbHfS7pk
eWkbbbsDhg4M8QcuaDjAvQdOrdHYsRtLbWaaqQWODh8M+p0y08ctuB2xO7JAIobU
u9x36oxXAgMBAAECggEAU3+KSiWS1WpIs0dw4FuhJuDvmaut2ccGwV0LW/4Z8N2A
DCyFtNjtNn6pNvIJIFDJHWV8uvcQ3zffwgY3mli1PSKUUshGND5xlMcE5RdkjFF9
0qgv4INsz0wU1jTEozxFcxXH4KWOxx6tZz1/qTBS0fIq4OsqFD61p8/CeyVm9fK0
ReW+xi/1C1PhgWwBOcmBKWs4h6BpDuY7SyIrBkbH4n6REF8zyxJth57tWeJ5BLQs
yktmU+rP8uqUWkAEYQ7YEx0Idknkga7NDmkcIVq64QxNOS3StxD8sHf6VcftJDB+
sxcl5mKilWsmTMEgSo0R3Ag55lxCtihHqQrmsYhxHQKBgQDUqYYLsQWFKxY0QXzs
VTzdkRkxWmnTUOP+SQHHBQQsZtGesGsBFdJEuqnK9e8ijRwU1aWb50OeoretX4TL
lpN2BJ8TwS/jgBWkAegQO74ynfN6EHs7hNU6HmFw8Taxy0LjKcrc41FZMgBri3Zl
CZBcOHRmZMtMYFAwvXIfO32flQKBgQDM3EVAVlLBAExkbLQMDf2Qou2af/ajmeyb
xjIGRqEyZV0i01v7cENllCE3n/GKWGw6qGwH1C0c6cuIlt7hgNLuMpOQAONktG09
0+I/7F18UjusmEE0NxjMZQrZaciL0eIAY7sfYGyv+kJFoO2ttWQ7J08DfuFysVLa
becUqu5xOwKBgQCE1KpkjRqcllAVLb6Aw7Dz2Bi7SfUFx+XQw/s3O3vi3Aocq6b6
k4213j4GBt1qYGdk4BnEKoyC/rHpudrxa0kKE1LlfOqTmEJsIcC4uwhPB3e4C6ld
gNfKqIVGjXQTU5mg2E7c76O1KdU3V3IJJBMmdyDFgDm3qAUOnJY2yerqjQKBgQDJ
yaaFCwKUjWCyAskOnrFHSNVWO/mLiNChWAZqXCPn6iRla1/NOfWJFvHpQqi/Jv3k
gYV36K1PL5OGRWXhJe2fJz5muBlEVtzL6+uOH5quHKofBhIkBqlsm5KmOSaLYv+E
drgY3ffxF0c0IqI7WtMR2VRhExeqy7Pa6CqYFw6rhQKBgEe58WK1Z79FcLn+sNQi
APue2kYlK5Vv1NuGH40ew3J/bcTZ+KekVhfeGIvQRH1GpIODRPn1yMRZnLcK0Slt
U3MuO68LQY7J8tDFeXHA8Rfu4XlH8Rresk0uvd1cP9aTAlpcU2bTMnJJmKSQPI6X
Uzg+YycA2ptaVyOcH93VnU9G
-----END PRIVATE KEY-----";

/// The public half of [`TEST_MERCHANT_KEY_PEM`] (SPKI, as WeChat Pay ships `pub_key.pem`).
const TEST_MERCHANT_PUBLIC_PEM: &str = r"-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqi4SB6ZU4ihvucAgq+/B
SOoVFBOg+C1R7dKeSYCkcM6u1fb+q19PMMgtS/cBGPQ7jVR9jbKjfOITxGKvetNc
kaSPXLvxTrsIosQPhoM9R6f3BVSGiS0DCPexhQjMy/3zkThcoBTiypZSW++799Th
sH+L+wApxrmBeZm1GWZOxaSvM3NOUi3UiC5+BTl1TIhJqQJXbvx2xLjnCkxBoTZu
QbUIKbeREXDzU0pyVTr5zeadv3j8geCQaY39EtN9ZVGxb5/dkl2x30u6ZHlpG227
A4YODPEHLmg4wL0HTq3R2LEbS21mmqkFjg4fDPqdMtPHLbgdsTuyQCKG1Lvcd+qM
VwIDAQAB
-----END PUBLIC KEY-----";

fn merchant_key_pem() -> &'static str {
    TEST_MERCHANT_KEY_PEM
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The merchant's notification endpoint: one line thanks to the extractor.
#[derive(Clone)]
struct Merchant {
    pay: WxPayClient,
    seen: Arc<Mutex<Vec<PayNotification>>>,
    failures_left: Arc<AtomicU32>,
}

impl FromRef<Merchant> for WxPayClient {
    fn from_ref(merchant: &Merchant) -> Self {
        merchant.pay.clone()
    }
}

async fn notify(State(merchant): State<Merchant>, notification: PayNotification) -> StatusCode {
    if merchant
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    merchant.seen.lock().unwrap().push(notification);
    StatusCode::NO_CONTENT
}

fn merchant_router(merchant: Merchant) -> Router {
    Router::new()
        .route("/pay/wechat/notify/", post(notify))
        .with_state(merchant)
}

struct Harness {
    fake: FakeWeChatPay,
    pay: WxPayClient,
    merchant: Merchant,
    notify_url: String,
    http: reqwest::Client,
}

impl Harness {
    async fn start() -> Self {
        Self::with(FakeWeChatPay::builder()).await
    }

    async fn with(builder: FakeWeChatPayBuilder) -> Self {
        let fake = builder
            .apiv3_key(APIV3_KEY)
            .merchant_key_pem(merchant_key_pem())
            .start()
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let notify_url = format!(
            "http://{}/pay/wechat/notify/",
            listener.local_addr().unwrap()
        );
        let pay = WxPayClient::new(fake.config().notify_url(&notify_url)).unwrap();
        let merchant = Merchant {
            pay: pay.clone(),
            seen: Arc::default(),
            failures_left: Arc::default(),
        };
        let router = merchant_router(merchant.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            fake,
            pay,
            merchant,
            notify_url,
            http: {
                // reqwest is built with `rustls-no-provider` (wxrest's TLS is rustls on ring):
                // like any app building its own clients, pick the process's provider first.
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::new()
            },
        }
    }

    async fn placed(&self, no: &str, total: i64) -> String {
        self.pay
            .prepay_jsapi(&JsapiOrder::new(no, "Green tea", total, BUYER))
            .await
            .unwrap()
    }

    async fn paid(&self, no: &str, total: i64) {
        self.placed(no, total).await;
        self.fake.pay(no).unwrap();
        self.fake.flush_notifications().await;
    }

    fn seen(&self) -> Vec<PayNotification> {
        self.merchant.seen.lock().unwrap().clone()
    }

    /// Posts a hand-made notification to the merchant: (status, JSON body or Null).
    async fn post(&self, notification: &SignedNotification) -> (StatusCode, Value) {
        let response = self
            .http
            .post(&self.notify_url)
            .headers(notification.headers())
            .body(notification.body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

fn assert_fail(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], "FAIL", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

async fn rendered(err: PayError) -> (StatusCode, Value) {
    let response = err.into_response();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

// ---- prepay and wx.requestPayment -------------------------------------------------------

#[tokio::test]
async fn prepay_gives_request_payment_params_signed_by_the_merchant_key() {
    let h = Harness::start().await;
    let params = h
        .pay
        .jsapi(&JsapiOrder::new("mall-000001", "Green tea", 2_500, BUYER))
        .await
        .unwrap();
    let json = serde_json::to_value(&params).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "appId",
            "nonceStr",
            "package",
            "paySign",
            "signType",
            "timeStamp"
        ]
    );
    assert_eq!(json["appId"], h.fake.appid());
    assert_eq!(json["signType"], "RSA");
    assert!(
        json["package"]
            .as_str()
            .unwrap()
            .starts_with("prepay_id=wx")
    );
    let ts: i64 = json["timeStamp"].as_str().unwrap().parse().unwrap();
    assert!((now() - ts).abs() < 5);
    assert!(h.fake.verify_pay_sign(&params));
    let mut altered = params.clone();
    altered.time_stamp = (ts + 1).to_string();
    assert!(!h.fake.verify_pay_sign(&altered));
}

#[tokio::test]
async fn placing_the_same_order_twice_gives_the_same_prepay_id() {
    let h = Harness::start().await;
    let first = h.placed("mall-000002", 100).await;
    let second = h.placed("mall-000002", 100).await;
    assert_eq!(first, second);
    assert_eq!(h.fake.prepay_calls(), 2);
}

#[tokio::test]
async fn same_out_trade_no_with_another_amount_is_out_trade_no_used() {
    let h = Harness::start().await;
    h.placed("mall-000003", 100).await;
    let err = h
        .pay
        .prepay_jsapi(&JsapiOrder::new("mall-000003", "Green tea", 200, BUYER))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("OUT_TRADE_NO_USED"));
    assert!(matches!(err, PayError::Api { status: 400, .. }));
}

#[tokio::test]
async fn invalid_out_trade_no_is_refused_before_calling_wechat_pay() {
    let h = Harness::start().await;
    let err = h
        .pay
        .prepay_jsapi(&JsapiOrder::new("bad no", "Green tea", 100, BUYER))
        .await
        .unwrap_err();
    assert!(matches!(err, PayError::InvalidRequest(_)));
    assert_eq!(h.fake.prepay_calls(), 0);
    let (status, body) = rendered(err).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "pay_invalid_request");
}

#[tokio::test]
async fn request_payment_pays_the_order_for_its_total_and_payer() {
    let h = Harness::start().await;
    let params = h
        .pay
        .jsapi(&JsapiOrder::new("mall-000004", "Green tea", 2_500, BUYER))
        .await
        .unwrap();
    h.fake.request_payment(&params).unwrap();
    let tx = h.pay.query_order("mall-000004").await.unwrap();
    assert_eq!(tx.trade_state, TradeState::Success);
    assert!(tx.transaction_id.is_some());
    assert!(tx.is_paid_for(2_500, BUYER));
    assert!(!tx.is_paid_for(2_499, BUYER));
    assert!(!tx.is_paid_for(2_500, "someone-else"));
}

#[tokio::test]
async fn request_payment_with_a_forged_pay_sign_is_refused_by_the_buyer_side() {
    let h = Harness::start().await;
    let mut params = h
        .pay
        .jsapi(&JsapiOrder::new("mall-000005", "Green tea", 100, BUYER))
        .await
        .unwrap();
    params.nonce_str.push('x');
    assert_eq!(
        h.fake.request_payment(&params),
        Err(FakePayError::BadParams("paySign does not verify"))
    );
    assert_eq!(
        h.fake.order("mall-000005").unwrap().trade_state,
        TradeState::NotPay
    );
}

// ---- query and close --------------------------------------------------------------------

#[tokio::test]
async fn query_of_an_order_never_placed_is_order_not_exist() {
    let h = Harness::start().await;
    let err = h.pay.query_order("mall-404404").await.unwrap_err();
    assert_eq!(
        err,
        PayError::NotFound {
            code: "ORDER_NOT_EXIST".into()
        }
    );
}

#[tokio::test]
async fn query_of_an_unpaid_order_is_notpay() {
    let h = Harness::start().await;
    h.placed("mall-000006", 100).await;
    let tx = h.pay.query_order("mall-000006").await.unwrap();
    assert_eq!(tx.trade_state, TradeState::NotPay);
    assert!(!tx.is_paid());
}

#[tokio::test]
async fn closed_order_can_no_longer_be_paid_or_placed() {
    let h = Harness::start().await;
    h.placed("mall-000007", 100).await;
    h.pay.close_order("mall-000007").await.unwrap();
    assert_eq!(h.fake.close_calls(), 1);
    assert_eq!(
        h.pay.query_order("mall-000007").await.unwrap().trade_state,
        TradeState::Closed
    );
    assert_eq!(
        h.fake.pay("mall-000007"),
        Err(FakePayError::NotPayable(TradeState::Closed))
    );
    let again = h
        .pay
        .prepay_jsapi(&JsapiOrder::new("mall-000007", "Green tea", 100, BUYER))
        .await;
    assert_eq!(again, Err(PayError::OrderClosed));
}

#[tokio::test]
async fn closing_a_paid_order_is_orderpaid_rendered_409() {
    let h = Harness::start().await;
    h.paid("mall-000008", 100).await;
    let err = h.pay.close_order("mall-000008").await.unwrap_err();
    assert_eq!(err, PayError::OrderPaid);
    let (status, body) = rendered(err).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "pay_order_paid");
}

#[tokio::test]
async fn closing_an_order_never_placed_is_order_not_exist() {
    let h = Harness::start().await;
    let err = h.pay.close_order("mall-404405").await.unwrap_err();
    assert_eq!(err.code(), Some("ORDER_NOT_EXIST"));
}

// ---- refunds ----------------------------------------------------------------------------

#[tokio::test]
async fn refund_is_created_once_per_out_refund_no_however_often_it_is_asked() {
    let h = Harness::start().await;
    h.paid("mall-000010", 2_500).await;
    let request = RefundRequest::new("mall-000010", "mall-000010-r", 2_500, 2_500);
    let calls = (0..5).map(|_| h.pay.refund(&request));
    let refunds = futures_util::future::join_all(calls).await;
    let ids: Vec<String> = refunds
        .into_iter()
        .map(|r| {
            let refund = r.unwrap();
            assert!(refund.status.is_accepted());
            refund.refund_id
        })
        .collect();
    assert!(ids.iter().all(|id| id == &ids[0]));
    assert_eq!(h.fake.refund_calls(), 5);
    assert_eq!(h.fake.refunds_created(), 1);
}

#[tokio::test]
async fn refund_is_processing_then_success() {
    let h = Harness::start().await;
    h.paid("mall-000011", 300).await;
    let request = RefundRequest::new("mall-000011", "mall-000011-r", 300, 300);
    let refund = h.pay.refund(&request).await.unwrap();
    assert_eq!(refund.status, RefundStatus::Processing);
    assert_eq!(refund.amount.refund, 300);
    h.fake.flush_notifications().await;
    let refund = h.pay.query_refund("mall-000011-r").await.unwrap();
    assert_eq!(refund.status, RefundStatus::Success);
    assert!(refund.success_time.is_some());
    assert_eq!(
        h.pay.query_order("mall-000011").await.unwrap().trade_state,
        TradeState::Refund
    );
}

#[tokio::test]
async fn refund_of_an_unpaid_order_is_invalid_request() {
    let h = Harness::start().await;
    h.placed("mall-000012", 100).await;
    let err = h
        .pay
        .refund(&RefundRequest::new("mall-000012", "r-12", 100, 100))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("INVALID_REQUEST"));
    assert_eq!(h.fake.refunds_created(), 0);
}

#[tokio::test]
async fn refunds_beyond_the_paid_amount_are_refused() {
    let h = Harness::start().await;
    h.paid("mall-000013", 100).await;
    h.pay
        .refund(&RefundRequest::new("mall-000013", "r-13-a", 60, 100))
        .await
        .unwrap();
    let err = h
        .pay
        .refund(&RefundRequest::new("mall-000013", "r-13-b", 60, 100))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("INVALID_REQUEST"));
    let local = h
        .pay
        .refund(&RefundRequest::new("mall-000013", "r-13-c", 101, 100))
        .await
        .unwrap_err();
    assert!(matches!(local, PayError::InvalidRequest(_)));
    assert_eq!(h.fake.refunds_created(), 1);
}

#[tokio::test]
async fn query_of_an_unknown_refund_is_resource_not_exists() {
    let h = Harness::start().await;
    let err = h.pay.query_refund("r-unknown").await.unwrap_err();
    assert_eq!(
        err,
        PayError::NotFound {
            code: "RESOURCE_NOT_EXISTS".into()
        }
    );
}

// ---- answers that must not be believed -----------------------------------------------------

#[tokio::test]
async fn tampered_answer_signature_is_a_signature_error_rendered_502() {
    let h = Harness::start().await;
    h.fake.fail_next(1, PayScript::TamperSignature);
    let err = h
        .pay
        .jsapi(&JsapiOrder::new("mall-000020", "Green tea", 100, BUYER))
        .await
        .unwrap_err();
    assert!(matches!(err, PayError::Signature(_)), "{err:?}");
    let (status, body) = rendered(err).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["code"], "pay_signature");
    assert!(body.get("prepay_id").is_none() && body.get("paySign").is_none());
}

#[tokio::test]
async fn tampered_paid_answer_to_a_query_is_not_believed() {
    let h = Harness::start().await;
    h.paid("mall-000021", 100).await;
    h.fake.fail_next(1, PayScript::TamperSignature);
    assert!(matches!(
        h.pay.query_order("mall-000021").await,
        Err(PayError::Signature(_))
    ));
    // Not retried: a forged answer is not a transient failure.
    assert_eq!(h.fake.query_calls(), 1);
}

#[tokio::test]
async fn answer_without_signature_headers_is_refused() {
    let h = Harness::start().await;
    h.placed("mall-000022", 100).await;
    h.fake.fail_next(1, PayScript::OmitSignature);
    let err = h.pay.query_order("mall-000022").await.unwrap_err();
    assert_eq!(
        err,
        PayError::Signature("missing header wechatpay-timestamp".into())
    );
}

#[tokio::test]
async fn empty_204_answer_without_a_valid_signature_is_refused() {
    let h = Harness::start().await;
    h.placed("mall-000023", 100).await;
    h.fake.fail_next(1, PayScript::TamperSignature);
    assert!(matches!(
        h.pay.close_order("mall-000023").await,
        Err(PayError::Signature(_))
    ));
}

#[tokio::test]
async fn signature_probe_in_an_answer_is_refused() {
    let h = Harness::start().await;
    h.placed("mall-000024", 100).await;
    h.fake.fail_next(1, PayScript::Probe);
    let err = h.pay.query_order("mall-000024").await.unwrap_err();
    assert_eq!(err, PayError::Signature("signature probe refused".into()));
}

#[tokio::test]
async fn answer_signed_under_another_serial_is_refused() {
    let h = Harness::start().await;
    h.placed("mall-000025", 100).await;
    h.fake.fail_next(1, PayScript::WrongSerial);
    let err = h.pay.query_order("mall-000025").await.unwrap_err();
    assert!(matches!(err, PayError::Signature(ref m) if m.contains("Wechatpay-Serial")));
}

#[tokio::test]
async fn answer_signed_ten_minutes_ago_is_refused() {
    let h = Harness::start().await;
    h.placed("mall-000026", 100).await;
    h.fake.fail_next(1, PayScript::StaleTimestamp);
    let err = h.pay.query_order("mall-000026").await.unwrap_err();
    assert!(matches!(err, PayError::Signature(ref m) if m.contains("Timestamp")));
}

#[tokio::test]
async fn request_signed_with_another_merchant_key_gets_sign_error() {
    let h = Harness::start().await;
    // Same merchant ids, but the fake's process-wide default merchant key, not ours.
    let stranger = FakeWeChatPay::start().await;
    let wrong = WxPayClient::new(stranger.config().api_base(h.fake.base_url())).unwrap();
    let err = wrong
        .prepay_jsapi(&JsapiOrder::new("mall-000027", "Green tea", 100, BUYER))
        .await
        .unwrap_err();
    assert!(matches!(err, PayError::SignRejected { .. }), "{err:?}");
    assert_eq!(err.code(), Some("SIGN_ERROR"));
    assert_eq!(h.fake.signature_rejections(), 1);
    assert!(h.fake.order("mall-000027").is_none());
}

// ---- error answers, retries and deadlines --------------------------------------------------

#[tokio::test]
async fn error_answers_are_typed_by_their_code() {
    let h = Harness::start().await;
    h.fake.fail_next(1, PayScript::error(400, "PARAM_ERROR"));
    let err = h.pay.query_order("mall-000030").await.unwrap_err();
    assert_eq!(
        err,
        PayError::Api {
            status: 400,
            code: "PARAM_ERROR".into(),
            message: "scripted error".into()
        }
    );
    let (status, _) = rendered(err).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn system_error_on_a_query_is_retried() {
    let h = Harness::start().await;
    h.placed("mall-000031", 100).await;
    h.fake.fail_next(1, PayScript::error(500, "SYSTEM_ERROR"));
    let tx = h.pay.query_order("mall-000031").await.unwrap();
    assert_eq!(tx.trade_state, TradeState::NotPay);
    assert_eq!(h.fake.query_calls(), 2);
}

#[tokio::test]
async fn system_error_on_prepay_is_not_retried() {
    let h = Harness::start().await;
    h.fake.fail_next(1, PayScript::error(500, "SYSTEM_ERROR"));
    let err = h
        .pay
        .prepay_jsapi(&JsapiOrder::new("mall-000032", "Green tea", 100, BUYER))
        .await
        .unwrap_err();
    assert!(matches!(err, PayError::Unavailable { status: 500, .. }));
    assert_eq!(h.fake.prepay_calls(), 1);
    let (status, _) = rendered(err).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn persistent_5xx_gives_up_after_the_bounded_retries() {
    let h = Harness::start().await;
    let pay = WxPayClient::new(h.pay.config().clone().max_retries(2)).unwrap();
    h.fake.fail_next(10, PayScript::error(503, "SYSTEM_ERROR"));
    let err = pay.query_order("mall-000033").await.unwrap_err();
    assert!(err.is_transient());
    assert_eq!(h.fake.query_calls(), 3);
}

#[tokio::test]
async fn slow_answer_times_out_within_the_deadline() {
    let h = Harness::start().await;
    let pay = WxPayClient::new(h.pay.config().clone().timeout(Duration::from_millis(300))).unwrap();
    h.fake
        .fail_next(1, PayScript::Delay(Duration::from_secs(3)));
    let started = Instant::now();
    let err = pay.query_order("mall-000034").await.unwrap_err();
    assert_eq!(err, PayError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
    let (status, _) = rendered(err).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn unreachable_wechat_pay_is_a_transport_error_within_the_deadline() {
    let h = Harness::start().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let pay = WxPayClient::new(
        h.pay
            .config()
            .clone()
            .api_base(dead)
            .timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let started = Instant::now();
    let err = pay.query_order("mall-000035").await.unwrap_err();
    assert!(matches!(err, PayError::Transport(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn fake_order_store_is_bounded() {
    let h = Harness::with(FakeWeChatPay::builder().max_orders(2)).await;
    h.placed("mall-000036", 100).await;
    h.placed("mall-000037", 100).await;
    let err = h
        .pay
        .prepay_jsapi(&JsapiOrder::new("mall-000038", "Green tea", 100, BUYER))
        .await
        .unwrap_err();
    assert_eq!(err, PayError::RateLimited);
}

// ---- notifications ------------------------------------------------------------------------

#[tokio::test]
async fn payment_notification_is_verified_and_decrypted_into_a_transaction() {
    let h = Harness::start().await;
    h.paid("mall-000040", 2_500).await;
    let seen = h.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].event_type, "TRANSACTION.SUCCESS");
    let tx = seen[0].transaction().unwrap();
    assert_eq!(tx.out_trade_no, "mall-000040");
    assert_eq!(tx.mchid, h.fake.mchid());
    assert!(tx.is_paid_for(2_500, BUYER));
    assert_eq!(h.fake.notifications_delivered(), 1);
}

#[tokio::test]
async fn notification_is_sent_again_until_acknowledged() {
    let h = Harness::start().await;
    h.merchant.failures_left.store(2, Ordering::SeqCst);
    h.paid("mall-000041", 100).await;
    assert_eq!(h.fake.notifications_sent(), 3);
    assert_eq!(h.fake.notifications_delivered(), 1);
    assert_eq!(h.seen().len(), 1);
}

#[tokio::test]
async fn notification_to_an_unreachable_merchant_is_given_up_after_its_attempts() {
    let h =
        Harness::with(FakeWeChatPay::builder().notify_retries(3, Duration::from_millis(10))).await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/pay/wechat/notify/", closed.local_addr().unwrap());
    drop(closed);
    let pay = WxPayClient::new(h.pay.config().clone().notify_url(dead)).unwrap();
    pay.prepay_jsapi(&JsapiOrder::new("mall-000039", "Green tea", 100, BUYER))
        .await
        .unwrap();
    h.fake.pay("mall-000039").unwrap();
    h.fake.flush_notifications().await;
    assert_eq!(h.fake.notifications_sent(), 3);
    assert_eq!(h.fake.notifications_delivered(), 0);
}

#[tokio::test]
async fn redelivered_notification_carries_the_same_id() {
    let h = Harness::start().await;
    h.paid("mall-000042", 100).await;
    assert!(h.fake.redeliver("mall-000042"));
    h.fake.flush_notifications().await;
    let seen = h.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], seen[1]);
}

#[tokio::test]
async fn dropped_notification_is_never_sent_but_the_query_reports_payment() {
    let h = Harness::start().await;
    h.fake.drop_notifications(1);
    h.paid("mall-000043", 100).await;
    assert_eq!(h.fake.notifications_sent(), 0);
    assert_eq!(h.fake.notifications_dropped(), 1);
    assert!(h.seen().is_empty());
    assert!(
        h.pay
            .query_order("mall-000043")
            .await
            .unwrap()
            .is_paid_for(100, BUYER)
    );
}

#[tokio::test]
async fn refund_notification_is_decrypted_into_a_refund_notice() {
    let h = Harness::start().await;
    h.paid("mall-000044", 100).await;
    let request =
        RefundRequest::new("mall-000044", "mall-000044-r", 100, 100).notify_url(&h.notify_url);
    h.pay.refund(&request).await.unwrap();
    h.fake.flush_notifications().await;
    let seen = h.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].event_type, "REFUND.SUCCESS");
    let NotifyResource::Refund(notice) = &seen[1].resource else {
        panic!("expected a refund notice, got {:?}", seen[1].resource);
    };
    assert_eq!(notice.out_refund_no, "mall-000044-r");
    assert_eq!(notice.refund_status, RefundStatus::Success);
    assert_eq!(notice.amount.refund, 100);
}

#[tokio::test]
async fn hand_posted_valid_notification_is_accepted() {
    let h = Harness::start().await;
    h.paid("mall-000045", 100).await;
    let notification = h.fake.transaction_notification("mall-000045").unwrap();
    let (status, _) = h.post(&notification).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let seen = h.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].id, seen[1].id);
}

#[tokio::test]
async fn notification_with_a_bad_signature_is_refused_with_401_fail() {
    let h = Harness::start().await;
    h.paid("mall-000046", 100).await;
    let mut notification = h.fake.transaction_notification("mall-000046").unwrap();
    let other = h.fake.transaction_notification("mall-000046").unwrap();
    notification.signature = other.signature;
    let (status, body) = h.post(&notification).await;
    assert_fail(status, &body, StatusCode::UNAUTHORIZED);
    assert_eq!(h.seen().len(), 1);
}

#[tokio::test]
async fn notification_whose_body_was_changed_after_signing_is_refused() {
    let h = Harness::start().await;
    h.paid("mall-000047", 100).await;
    let mut notification = h.fake.transaction_notification("mall-000047").unwrap();
    notification.body.insert(1, b' ');
    let (status, body) = h.post(&notification).await;
    assert_fail(status, &body, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signature_probe_notification_is_refused() {
    let h = Harness::start().await;
    h.paid("mall-000048", 100).await;
    let mut notification = h.fake.transaction_notification("mall-000048").unwrap();
    notification.signature = "WECHATPAY/SIGNTEST/c2lnbmF0dXJl".into();
    let (status, body) = h.post(&notification).await;
    assert_fail(status, &body, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "signature probe refused");
}

#[tokio::test]
async fn notification_signed_more_than_five_minutes_ago_or_ahead_is_refused() {
    let h = Harness::start().await;
    h.paid("mall-000049", 100).await;
    let body = h.fake.transaction_notification("mall-000049").unwrap().body;
    for at in [now() - 301, now() + 301] {
        let replay = h.fake.sign_notification(at, &body);
        let (status, json) = h.post(&replay).await;
        assert_fail(status, &json, StatusCode::UNAUTHORIZED);
    }
    let fresh = h.fake.sign_notification(now() - 200, &body);
    assert_eq!(h.post(&fresh).await.0, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn notification_with_an_unknown_serial_is_refused() {
    let h = Harness::start().await;
    h.paid("mall-000050", 100).await;
    let mut notification = h.fake.transaction_notification("mall-000050").unwrap();
    notification.serial = "PUB_KEY_ID_SOMEONE_ELSE".into();
    let (status, body) = h.post(&notification).await;
    assert_fail(status, &body, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn notification_without_signature_headers_is_refused() {
    let h = Harness::start().await;
    let response = h
        .http
        .post(&h.notify_url)
        .header("content-type", "application/json")
        .body(r#"{"id":"x"}"#)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_fail(status, &body, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "missing header wechatpay-timestamp");
}

#[tokio::test]
async fn notification_encrypted_with_another_apiv3_key_is_refused_400() {
    let h = Harness::start().await;
    h.paid("mall-000051", 100).await;
    let tx = serde_json::to_value(h.fake.order("mall-000051").unwrap()).unwrap();
    let wrong_key = *b"not-the-merchants-apiv3-key-0000";
    let body =
        h.fake
            .notification_body("TRANSACTION.SUCCESS", "transaction", &tx, Some(&wrong_key));
    let (status, json) = h.post(&h.fake.sign_notification(now(), &body)).await;
    assert_fail(status, &json, StatusCode::BAD_REQUEST);
    assert_eq!(json["message"], "resource could not be decrypted");
    assert_eq!(h.seen().len(), 1);
}

#[tokio::test]
async fn notification_with_tampered_ciphertext_is_refused_400() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let h = Harness::start().await;
    h.paid("mall-000052", 100).await;
    let tx = serde_json::to_value(h.fake.order("mall-000052").unwrap()).unwrap();
    let body = h
        .fake
        .notification_body("TRANSACTION.SUCCESS", "transaction", &tx, None);
    let mut envelope: Value = serde_json::from_slice(&body).unwrap();
    let mut ciphertext = STANDARD
        .decode(envelope["resource"]["ciphertext"].as_str().unwrap())
        .unwrap();
    ciphertext[0] ^= 0x01;
    envelope["resource"]["ciphertext"] = json!(STANDARD.encode(ciphertext));
    let body = envelope.to_string().into_bytes();
    let (status, json) = h.post(&h.fake.sign_notification(now(), &body)).await;
    assert_fail(status, &json, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn notification_for_another_merchant_is_refused() {
    let h = Harness::start().await;
    h.paid("mall-000053", 100).await;
    let mut tx = serde_json::to_value(h.fake.order("mall-000053").unwrap()).unwrap();
    tx["mchid"] = json!("1999999999");
    let body = h
        .fake
        .notification_body("TRANSACTION.SUCCESS", "transaction", &tx, None);
    let (status, json) = h.post(&h.fake.sign_notification(now(), &body)).await;
    assert_fail(status, &json, StatusCode::BAD_REQUEST);
    assert_eq!(h.seen().len(), 1);
}

#[tokio::test]
async fn oversized_notification_is_refused_413_before_it_is_read() {
    let h = Harness::start().await;
    let big = vec![b' '; MAX_NOTIFICATION_BYTES + 1];
    let notification = h.fake.sign_notification(now(), &big);
    let (status, body) = h.post(&notification).await;
    assert_fail(status, &body, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn oversized_notification_without_content_length_is_refused_413() {
    let h = Harness::start().await;
    let big = vec![b' '; MAX_NOTIFICATION_BYTES + 1];
    let notification = h.fake.sign_notification(now(), &big);
    let request = notification.request("/pay/wechat/notify/");
    assert!(request.headers().get("content-length").is_none());
    let response = merchant_router(h.merchant.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let bytes = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["code"], "FAIL");
}

#[tokio::test]
async fn notification_that_is_not_json_but_correctly_signed_is_refused_400() {
    let h = Harness::start().await;
    let notification = h.fake.sign_notification(now(), b"not json");
    let (status, body) = h.post(&notification).await;
    assert_fail(status, &body, StatusCode::BAD_REQUEST);
}

// ---- development and configuration --------------------------------------------------------

#[tokio::test]
async fn dev_mode_lets_a_developer_pay_with_a_plain_post() {
    let h = Harness::with(FakeWeChatPay::builder().dev_mode(true)).await;
    h.placed("mall-000060", 100).await;
    let url = format!("{}/fake/pay/mall-000060", h.fake.base_url());
    let response = h.http.post(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tx: Value = response.json().await.unwrap();
    assert_eq!(tx["trade_state"], "SUCCESS");
    h.fake.flush_notifications().await;
    assert_eq!(h.seen().len(), 1);
    let again = h.http.post(&url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn without_dev_mode_there_is_no_pay_route() {
    let h = Harness::start().await;
    h.placed("mall-000061", 100).await;
    let url = format!("{}/fake/pay/mall-000061", h.fake.base_url());
    let response = h.http.post(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        h.fake.order("mall-000061").unwrap().trade_state,
        TradeState::NotPay
    );
}

fn config_builder() -> wxrest::pay::WxPayConfigBuilder {
    WxPayConfig::builder()
        .mchid("1900000109")
        .merchant_serial("SERIAL")
        .merchant_key_pem(merchant_key_pem())
        .apiv3_key(APIV3_KEY)
        .wechatpay_public_key_pem(public_pem())
        .public_key_id("PUB_KEY_ID_1")
        .appid("wx1")
        .notify_url("https://shop.example/pay/wechat/notify/")
}

fn public_pem() -> String {
    TEST_MERCHANT_PUBLIC_PEM.to_owned()
}

#[tokio::test]
async fn apiv3_key_must_be_exactly_32_bytes() {
    assert!(config_builder().build().is_ok());
    for key in ["short", "apiv3-secret-key-0123456789abcdef"] {
        let err = config_builder().apiv3_key(key).build().unwrap_err();
        assert!(
            matches!(err, PayError::Config(ref m) if m.contains("32 bytes")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn public_key_in_place_of_the_private_key_is_a_config_error() {
    let err = config_builder()
        .merchant_key_pem(public_pem())
        .build()
        .unwrap_err();
    assert!(matches!(err, PayError::Config(_)));
}

#[tokio::test]
async fn keys_never_appear_in_debug_errors_or_responses() {
    let h = Harness::start().await;
    let pem = merchant_key_pem();
    let key_lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let config = config_builder().build().unwrap();
    let client = WxPayClient::new(config.clone()).unwrap();
    let builder = config_builder();
    let bad_key = config_builder()
        .merchant_key_pem(pem.replace('A', "B"))
        .apiv3_key("short-secret-apiv3")
        .build()
        .unwrap_err();
    let bad_key_response = rendered(bad_key.clone()).await.1;
    h.fake.fail_next(1, PayScript::TamperSignature);
    let forged = h.pay.query_order("mall-000070").await.unwrap_err();
    let texts = [
        format!("{config:?}"),
        format!("{client:?}"),
        format!("{:?}", h.pay),
        format!("{builder:?}"),
        format!("{:?}", h.fake),
        format!("{bad_key:?} {bad_key}"),
        bad_key_response.to_string(),
        format!("{forged:?} {forged}"),
        rendered(forged).await.1.to_string(),
    ];
    for text in &texts {
        assert!(!text.contains(APIV3_KEY), "APIv3 key leaked: {text}");
        assert!(
            !text.contains("short-secret-apiv3"),
            "APIv3 key leaked: {text}"
        );
        assert!(!text.contains("PRIVATE KEY"), "private key leaked: {text}");
        for line in &key_lines {
            assert!(!text.contains(line), "private key material leaked: {text}");
        }
    }
}

#[tokio::test]
async fn extractor_works_in_a_router_without_a_socket() {
    let h = Harness::start().await;
    h.paid("mall-000080", 100).await;
    let notification = h.fake.transaction_notification("mall-000080").unwrap();
    let response = merchant_router(h.merchant.clone())
        .oneshot(notification.request("/pay/wechat/notify/"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let mut forged = notification.clone();
    forged.signature = "AAAA".into();
    let response = merchant_router(h.merchant.clone())
        .oneshot(forged.request("/pay/wechat/notify/"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
