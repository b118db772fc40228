//! The fake's HTTP side: request signature checks, the five API v3 endpoints, signed answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};

use super::notifier::beijing_now;
use super::{Counters, FakePayError, MAX_REQUEST_BYTES, Order, PayScript, Shared};
use crate::pay::refund::{Refund, RefundAmount, RefundNotice, RefundStatus};
use crate::pay::sign::{self, AUTH_SCHEME, MAX_CLOCK_SKEW_SECS, PROBE_PREFIX, RequestPayment};
use crate::pay::transaction::{TradeState, is_valid_out_trade_no};

/// The API endpoints the fake serves.
enum Endpoint<'a> {
    Prepay,
    Query(&'a str),
    Close(&'a str),
    Refund,
    RefundQuery(&'a str),
}

impl<'a> Endpoint<'a> {
    fn route(method: &Method, path: &'a str) -> Option<Self> {
        const ORDER: &str = "/v3/pay/transactions/out-trade-no/";
        const REFUNDS: &str = "/v3/refund/domestic/refunds";
        let post = method == Method::POST;
        let get = method == Method::GET;
        if path == "/v3/pay/transactions/jsapi" && post {
            return Some(Self::Prepay);
        }
        if path == REFUNDS && post {
            return Some(Self::Refund);
        }
        if let Some(no) = path.strip_prefix(REFUNDS).and_then(|p| p.strip_prefix('/'))
            && get
            && !no.contains('/')
        {
            return Some(Self::RefundQuery(no));
        }
        let rest = path.strip_prefix(ORDER)?;
        match rest.strip_suffix("/close") {
            Some(no) if post && !no.contains('/') => Some(Self::Close(no)),
            None if get && !rest.contains('/') => Some(Self::Query(rest)),
            _ => None,
        }
    }

    fn counter<'c>(&self, counters: &'c Counters) -> &'c AtomicU64 {
        match self {
            Self::Prepay => &counters.prepay,
            Self::Query(_) => &counters.query,
            Self::Close(_) => &counters.close,
            Self::Refund => &counters.refund,
            Self::RefundQuery(_) => &counters.refund_query,
        }
    }
}

type Answer = (StatusCode, Vec<u8>);

fn fail(status: u16, code: &str, message: &str) -> Answer {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    )
}

fn ok(value: &impl serde::Serialize) -> Answer {
    (
        StatusCode::OK,
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

/// Every request lands here: WeChat Pay checks the signature before anything else.
/// The answer of a development "buyer pays" route: the transaction, or why not (404 no such
/// order, 409 not payable, 400 parameters WeChat would refuse).
fn buyer_answer(paid: Result<crate::pay::Transaction, FakePayError>) -> Response {
    match paid {
        Ok(tx) => axum::Json(tx).into_response(),
        Err(err) => {
            let status = match err {
                FakePayError::UnknownOrder => StatusCode::NOT_FOUND,
                FakePayError::BadParams(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::CONFLICT,
            };
            (
                status,
                axum::Json(json!({ "code": "FAIL", "message": err.to_string() })),
            )
                .into_response()
        }
    }
}

pub(super) async fn dispatch(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_REQUEST_BYTES).await else {
        let (status, body) = fail(413, "PARAM_ERROR", "request body too large");
        return shared.answer(status, body, None);
    };
    let path = parts.uri.path();
    let path_and_query = parts.uri.path_and_query().map_or(path, |pq| pq.as_str());
    // Not WeChat Pay: a sink for the default notify_url, and the dev-mode "buyer pays".
    if parts.method == Method::POST && path == "/fake/notify-sink" {
        return StatusCode::NO_CONTENT.into_response();
    }
    if shared.dev_mode && parts.method == Method::POST && path == "/fake/request-payment" {
        // What `wx.requestPayment(params)` does, for a mini-program stand-in: the parameters
        // the merchant signed, checked as WeChat checks them, then the buyer pays.
        let paid = serde_json::from_slice::<RequestPayment>(&body)
            .map_err(|_| FakePayError::BadParams("expected wx.requestPayment's parameters"))
            .and_then(|params| shared.request_payment(&params));
        return buyer_answer(paid);
    }
    if shared.dev_mode
        && parts.method == Method::POST
        && let Some(out_trade_no) = path.strip_prefix("/fake/pay/")
    {
        return buyer_answer(shared.pay(out_trade_no));
    }
    let Some(endpoint) = Endpoint::route(&parts.method, path) else {
        let (status, body) = fail(404, "NOT_FOUND", "no such API");
        return shared.answer(status, body, None);
    };
    endpoint
        .counter(&shared.counters)
        .fetch_add(1, Ordering::SeqCst);
    if let Err(reason) = check_merchant_signature(
        &shared,
        &parts.method,
        path_and_query,
        &parts.headers,
        &body,
    ) {
        shared
            .counters
            .signature_rejections
            .fetch_add(1, Ordering::SeqCst);
        let (status, body) = fail(401, "SIGN_ERROR", reason);
        return shared.answer(status, body, None);
    }
    let script = shared.take_script();
    match &script {
        Some(PayScript::Error {
            status,
            code,
            message,
        }) => {
            let (status, body) = fail(*status, code, message);
            return shared.answer(status, body, None);
        }
        Some(PayScript::Delay(delay)) => tokio::time::sleep(*delay).await,
        _ => {}
    }
    let (status, body) = match endpoint {
        Endpoint::Prepay => prepay(&shared, &body),
        Endpoint::Query(no) => query(&shared, no, parts.uri.query()),
        Endpoint::Close(no) => close(&shared, no, &body),
        Endpoint::Refund => refund(&shared, &body),
        Endpoint::RefundQuery(no) => match shared.lock().refunds.get(no) {
            Some((refund, _)) => ok(refund),
            None => fail(404, "RESOURCE_NOT_EXISTS", "refund does not exist"),
        },
    };
    shared.answer(status, body, script.as_ref())
}

/// Checks `Authorization` as WeChat Pay does: scheme, mchid, certificate serial, timestamp
/// window, and the RSA signature over `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`.
fn check_merchant_signature(
    shared: &Shared,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), &'static str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("missing Authorization header")?;
    let params = value
        .strip_prefix(AUTH_SCHEME)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or("Authorization scheme must be WECHATPAY2-SHA256-RSA2048")?;
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for part in params.split(',') {
        let (name, quoted) = part
            .trim()
            .split_once('=')
            .ok_or("malformed Authorization")?;
        let value = quoted
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or("Authorization values must be double-quoted")?;
        fields.insert(name, value);
    }
    let field = |name| fields.get(name).copied().filter(|v| !v.is_empty());
    let mchid = field("mchid").ok_or("mchid missing")?;
    let nonce = field("nonce_str").ok_or("nonce_str missing")?;
    let timestamp = field("timestamp").ok_or("timestamp missing")?;
    let serial = field("serial_no").ok_or("serial_no missing")?;
    let signature = field("signature").ok_or("signature missing")?;
    if mchid != shared.mchid {
        return Err("mchid does not match");
    }
    if serial != shared.merchant_serial {
        return Err("serial_no is not the merchant certificate");
    }
    let at: i64 = timestamp.parse().map_err(|_| "timestamp is not a number")?;
    if sign::unix_now().abs_diff(at) >= MAX_CLOCK_SKEW_SECS.unsigned_abs() {
        return Err("timestamp expired");
    }
    let message = sign::request_message(method.as_str(), path_and_query, at, nonce, body);
    if !sign::verify(&shared.merchant_public, &message, signature) {
        return Err("signature does not verify");
    }
    Ok(())
}

/// The request body as JSON, or WeChat Pay's 400 `PARAM_ERROR`.
fn json_body(body: &[u8]) -> Result<Value, Answer> {
    serde_json::from_slice::<Value>(body).map_err(|_| fail(400, "PARAM_ERROR", "body is not JSON"))
}

/// The non-empty string at `ptr` (a JSON pointer), if any.
fn non_empty_text<'v>(v: &'v Value, ptr: &str) -> Option<&'v str> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn prepay(shared: &Shared, body: &[u8]) -> Answer {
    let v = match json_body(body) {
        Ok(v) => v,
        Err(answer) => return answer,
    };
    let text = |ptr: &str| non_empty_text(&v, ptr);
    let (Some(appid), Some(mchid), Some(description), Some(no), Some(notify_url), Some(openid)) = (
        text("/appid"),
        text("/mchid"),
        text("/description"),
        text("/out_trade_no"),
        text("/notify_url"),
        text("/payer/openid"),
    ) else {
        return fail(400, "PARAM_ERROR", "a required field is missing");
    };
    let Some(total) = v
        .pointer("/amount/total")
        .and_then(Value::as_i64)
        .filter(|t| *t > 0)
    else {
        return fail(
            400,
            "PARAM_ERROR",
            "amount.total must be a positive integer",
        );
    };
    if mchid != shared.mchid {
        return fail(
            400,
            "PARAM_ERROR",
            "mchid does not match the signing merchant",
        );
    }
    if appid != shared.appid {
        return fail(400, "APPID_MCHID_NOT_MATCH", "appid and mchid do not match");
    }
    if !is_valid_out_trade_no(no) {
        return fail(400, "PARAM_ERROR", "invalid out_trade_no");
    }
    let attach = text("/attach").map(str::to_owned);
    let mut state = shared.lock();
    if let Some(order) = state.orders.get(no) {
        return match order.state {
            TradeState::Success | TradeState::Refund => fail(400, "ORDERPAID", "order paid"),
            TradeState::Closed => fail(400, "ORDER_CLOSED", "order closed"),
            _ if order.appid == appid
                && order.description == description
                && order.total == total
                && order.openid == openid
                && order.notify_url == notify_url
                && order.attach == attach =>
            {
                ok(&json!({ "prepay_id": order.prepay_id }))
            }
            _ => fail(
                400,
                "OUT_TRADE_NO_USED",
                "out_trade_no used with other values",
            ),
        };
    }
    if state.orders.len() >= shared.max_orders {
        return fail(429, "FREQUENCY_LIMITED", "fake order store is full");
    }
    let prepay_id = format!(
        "wx{}{}",
        chrono::Utc::now().format("%d%H%M%S"),
        sign::nonce().to_ascii_lowercase()
    );
    state.prepay_ids.insert(prepay_id.clone(), no.to_owned());
    state.orders.insert(
        no.to_owned(),
        Order {
            appid: appid.to_owned(),
            description: description.to_owned(),
            total,
            openid: openid.to_owned(),
            attach,
            notify_url: notify_url.to_owned(),
            prepay_id: prepay_id.clone(),
            state: TradeState::NotPay,
            transaction_id: None,
            success_time: None,
            refunded: 0,
            notification: None,
        },
    );
    ok(&json!({ "prepay_id": prepay_id }))
}

fn query(shared: &Shared, no: &str, query: Option<&str>) -> Answer {
    let mchid = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("mchid="));
    if mchid != Some(shared.mchid.as_str()) {
        return fail(400, "PARAM_ERROR", "mchid query parameter missing or wrong");
    }
    match shared.lock().orders.get(no) {
        Some(order) => ok(&order.transaction(&shared.mchid, no)),
        None => fail(404, "ORDER_NOT_EXIST", "order does not exist"),
    }
}

fn close(shared: &Shared, no: &str, body: &[u8]) -> Answer {
    let mchid = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("mchid").and_then(Value::as_str).map(str::to_owned));
    if mchid.as_deref() != Some(shared.mchid.as_str()) {
        return fail(400, "PARAM_ERROR", "mchid missing or wrong");
    }
    let mut state = shared.lock();
    let Some(order) = state.orders.get_mut(no) else {
        return fail(404, "ORDER_NOT_EXIST", "order does not exist");
    };
    match order.state {
        TradeState::Success | TradeState::Refund => fail(400, "ORDERPAID", "order paid"),
        _ => {
            order.state = TradeState::Closed;
            (StatusCode::NO_CONTENT, Vec::new())
        }
    }
}

fn refund(shared: &Arc<Shared>, body: &[u8]) -> Answer {
    let v = match json_body(body) {
        Ok(v) => v,
        Err(answer) => return answer,
    };
    let text = |ptr: &str| non_empty_text(&v, ptr);
    let int = |ptr: &str| v.pointer(ptr).and_then(Value::as_i64);
    let (Some(out_refund_no), Some(refund), Some(total)) = (
        text("/out_refund_no"),
        int("/amount/refund"),
        int("/amount/total"),
    ) else {
        return fail(400, "PARAM_ERROR", "a required field is missing");
    };
    if text("/amount/currency").is_some_and(|c| c != "CNY") {
        return fail(400, "PARAM_ERROR", "currency must be CNY");
    }
    let notify_url = text("/notify_url").map(str::to_owned);
    let id = shared.next_id();
    let mut state = shared.lock();
    let no = match (text("/out_trade_no"), text("/transaction_id")) {
        (Some(no), _) => no.to_owned(),
        (None, Some(tid)) => match state
            .orders
            .iter()
            .find(|(_, o)| o.transaction_id.as_deref() == Some(tid))
        {
            Some((no, _)) => no.clone(),
            None => return fail(404, "RESOURCE_NOT_EXISTS", "order does not exist"),
        },
        (None, None) => {
            return fail(
                400,
                "PARAM_ERROR",
                "out_trade_no or transaction_id required",
            );
        }
    };
    // One refund per out_refund_no: asking again answers the same refund.
    if let Some((existing, _)) = state.refunds.get(out_refund_no) {
        if existing.out_trade_no != no {
            return fail(
                400,
                "INVALID_REQUEST",
                "out_refund_no used for another order",
            );
        }
        return ok(existing);
    }
    if state.refunds.len() >= shared.max_orders {
        return fail(429, "FREQUENCY_LIMITED", "fake refund store is full");
    }
    let Some(order) = state.orders.get_mut(&no) else {
        return fail(404, "RESOURCE_NOT_EXISTS", "order does not exist");
    };
    if !matches!(order.state, TradeState::Success | TradeState::Refund) {
        return fail(400, "INVALID_REQUEST", "the order is not paid");
    }
    if total != order.total {
        return fail(400, "PARAM_ERROR", "amount.total does not match the order");
    }
    if refund < 1 || order.refunded + refund > order.total {
        return fail(
            400,
            "INVALID_REQUEST",
            "refund exceeds the refundable amount",
        );
    }
    order.refunded += refund;
    order.state = TradeState::Refund;
    let created = Refund {
        refund_id: format!("50300{id:024}"),
        out_refund_no: out_refund_no.to_owned(),
        transaction_id: order.transaction_id.clone().unwrap_or_default(),
        out_trade_no: no,
        status: RefundStatus::Processing,
        channel: Some("ORIGINAL".to_owned()),
        user_received_account: Some("支付用户零钱".to_owned()),
        success_time: None,
        create_time: Some(beijing_now()),
        amount: RefundAmount {
            total,
            refund,
            payer_total: Some(total),
            payer_refund: Some(refund),
            currency: Some("CNY".to_owned()),
        },
    };
    state
        .refunds
        .insert(out_refund_no.to_owned(), (created.clone(), notify_url));
    drop(state);
    shared
        .counters
        .refunds_created
        .fetch_add(1, Ordering::SeqCst);
    settle_later(shared, out_refund_no.to_owned());
    ok(&created)
}

/// The refund succeeds after the configured delay, and its notification is sent.
fn settle_later(shared: &Arc<Shared>, out_refund_no: String) {
    let task_shared = shared.clone();
    let task = tokio::spawn(async move {
        let shared = task_shared;
        tokio::time::sleep(shared.refund_delay).await;
        let settled = {
            let mut state = shared.lock();
            let Some((refund, url)) = state.refunds.get_mut(&out_refund_no) else {
                return;
            };
            refund.status = RefundStatus::Success;
            refund.success_time = Some(beijing_now());
            let notice = RefundNotice {
                mchid: shared.mchid.clone(),
                out_trade_no: refund.out_trade_no.clone(),
                transaction_id: refund.transaction_id.clone(),
                out_refund_no: refund.out_refund_no.clone(),
                refund_id: refund.refund_id.clone(),
                refund_status: RefundStatus::Success,
                success_time: refund.success_time.clone(),
                user_received_account: refund.user_received_account.clone(),
                amount: refund.amount.clone(),
            };
            url.clone().map(|url| (url, notice))
        };
        if let Some((url, notice)) = settled {
            let plaintext = serde_json::to_value(&notice).unwrap_or_default();
            let body = shared.envelope("REFUND.SUCCESS", "refund", &plaintext, &shared.apiv3_key);
            shared.deliver(url, body);
        }
    });
    shared.track(task);
}

impl Shared {
    /// An answer signed with the platform key, mangled as `script` says.
    fn answer(&self, status: StatusCode, body: Vec<u8>, script: Option<&PayScript>) -> Response {
        let at = match script {
            Some(PayScript::StaleTimestamp) => sign::unix_now() - 600,
            _ => sign::unix_now(),
        };
        let mut signed = self.sign_body(at, &body);
        match script {
            Some(PayScript::TamperSignature) => signed.signature = tamper(&signed.signature),
            Some(PayScript::Probe) => {
                signed.signature = format!("{PROBE_PREFIX}{}", signed.nonce);
            }
            Some(PayScript::WrongSerial) => {
                signed.serial = "PUB_KEY_ID_0000000000000000000000000000OTHER".to_owned();
            }
            _ => {}
        }
        let mut headers = match script {
            Some(PayScript::OmitSignature) => HeaderMap::new(),
            _ => signed.signature_headers(),
        };
        if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string()) {
            headers.insert("request-id", id);
        }
        if !body.is_empty() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        (status, headers, body).into_response()
    }
}

/// A well-formed signature of something else.
fn tamper(signature: &str) -> String {
    match STANDARD.decode(signature) {
        Ok(mut bytes) if !bytes.is_empty() => {
            bytes[0] ^= 0x01;
            STANDARD.encode(bytes)
        }
        _ => format!("A{signature}"),
    }
}
