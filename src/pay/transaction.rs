//! A payment order: what the merchant asks WeChat Pay for ([`JsapiOrder`]) and what WeChat
//! Pay says about it ([`Transaction`]).

use serde::{Deserialize, Serialize};

use super::PayError;

/// A JSAPI (mini-program) payment order to place with WeChat Pay. Amounts are integer fen.
///
/// ```
/// use wxrest::pay::JsapiOrder;
///
/// let order = JsapiOrder::new("ORDER_20261127_0001", "Green tea x2", 2_500, "o-openid")
///     .attach("order:1");
/// assert_eq!(order.total, 2_500);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JsapiOrder {
    /// The merchant's order number: 6-32 characters of `[0-9A-Za-z_-|*]`, unique per merchant.
    pub out_trade_no: String,
    /// What the buyer sees (1-127 characters).
    pub description: String,
    /// The amount in fen (at least 1).
    pub total: i64,
    /// The buyer's openid for the configured appid.
    pub payer_openid: String,
    /// Merchant data echoed back in queries and notifications (at most 128 bytes).
    pub attach: Option<String>,
    /// When WeChat Pay stops accepting payment for the order (RFC 3339).
    pub time_expire: Option<String>,
}

impl JsapiOrder {
    /// An order of `total` fen for the buyer `payer_openid`.
    pub fn new(
        out_trade_no: impl Into<String>,
        description: impl Into<String>,
        total: i64,
        payer_openid: impl Into<String>,
    ) -> Self {
        Self {
            out_trade_no: out_trade_no.into(),
            description: description.into(),
            total,
            payer_openid: payer_openid.into(),
            attach: None,
            time_expire: None,
        }
    }

    /// Sets the merchant data echoed back by WeChat Pay.
    #[must_use]
    pub fn attach(mut self, attach: impl Into<String>) -> Self {
        self.attach = Some(attach.into());
        self
    }

    /// Sets when WeChat Pay stops accepting payment. Derive it from the order (e.g. its
    /// creation time plus the unpaid timeout), so placing the order again sends the same value.
    #[must_use]
    pub fn time_expire(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
        self.time_expire = Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false));
        self
    }

    /// Checks what WeChat Pay would refuse, before calling it.
    pub(super) fn validate(&self) -> Result<(), PayError> {
        check_out_trade_no(&self.out_trade_no)?;
        let chars = self.description.chars().count();
        if chars == 0 || chars > 127 {
            return Err(PayError::InvalidRequest(
                "description must have 1 to 127 characters".into(),
            ));
        }
        if self.total < 1 {
            return Err(PayError::InvalidRequest(
                "total must be at least 1 fen".into(),
            ));
        }
        if self.payer_openid.trim().is_empty() || self.payer_openid.len() > 128 {
            return Err(PayError::InvalidRequest(
                "payer_openid must have 1 to 128 characters".into(),
            ));
        }
        if self.attach.as_ref().is_some_and(|a| a.len() > 128) {
            return Err(PayError::InvalidRequest(
                "attach must be at most 128 bytes".into(),
            ));
        }
        Ok(())
    }
}

/// Whether `no` is an `out_trade_no` WeChat Pay accepts: 6-32 characters of
/// `[0-9A-Za-z_-|*]`.
///
/// ```
/// use wxrest::pay::is_valid_out_trade_no;
/// assert!(is_valid_out_trade_no("mall-42-7f3a"));
/// assert!(!is_valid_out_trade_no("short"));
/// assert!(!is_valid_out_trade_no("has space 123"));
/// ```
pub fn is_valid_out_trade_no(no: &str) -> bool {
    (6..=32).contains(&no.len())
        && no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*'))
}

pub(super) fn check_out_trade_no(no: &str) -> Result<(), PayError> {
    if is_valid_out_trade_no(no) {
        Ok(())
    } else {
        Err(PayError::InvalidRequest(
            "out_trade_no must be 6-32 characters of [0-9A-Za-z_-|*]".into(),
        ))
    }
}

/// The state of a payment order at WeChat Pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[non_exhaustive]
pub enum TradeState {
    /// Paid.
    Success,
    /// Paid, then (partly) refunded.
    Refund,
    /// Not paid yet.
    #[serde(rename = "NOTPAY")]
    NotPay,
    /// Closed by the merchant (or expired): can no longer be paid.
    Closed,
    /// Revoked (payment-code payments only).
    Revoked,
    /// The buyer is paying (entering a password).
    #[serde(rename = "USERPAYING")]
    UserPaying,
    /// Payment failed.
    #[serde(rename = "PAYERROR")]
    PayFailed,
    /// A state this version does not know.
    #[serde(other)]
    Unknown,
}

impl TradeState {
    /// WeChat Pay's name of the state (`SUCCESS`, `NOTPAY`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Refund => "REFUND",
            Self::NotPay => "NOTPAY",
            Self::Closed => "CLOSED",
            Self::Revoked => "REVOKED",
            Self::UserPaying => "USERPAYING",
            Self::PayFailed => "PAYERROR",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// A payment order as WeChat Pay reports it: the answer to a query, or the content of a
/// `TRANSACTION.SUCCESS` notification.
///
/// ```
/// use wxrest::pay::{TradeState, Transaction};
///
/// let tx: Transaction = serde_json::from_str(r#"{
///     "appid": "wx1", "mchid": "190", "out_trade_no": "mall-000001",
///     "transaction_id": "4200001", "trade_type": "JSAPI", "trade_state": "SUCCESS",
///     "trade_state_desc": "ok", "success_time": "2026-11-27T10:00:00+08:00",
///     "payer": {"openid": "o1"}, "amount": {"total": 100, "payer_total": 100,
///     "currency": "CNY", "payer_currency": "CNY"}
/// }"#)?;
/// assert_eq!(tx.trade_state, TradeState::Success);
/// assert!(tx.is_paid_for(100, "o1"));
/// assert!(!tx.is_paid_for(99, "o1"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Transaction {
    /// The appid the order was placed for.
    pub appid: String,
    /// The merchant id.
    pub mchid: String,
    /// The merchant's order number.
    pub out_trade_no: String,
    /// WeChat Pay's order number (once paid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// `JSAPI` for mini-program payments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_type: Option<String>,
    /// The state.
    pub trade_state: TradeState,
    /// A description of the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_state_desc: Option<String>,
    /// The bank (or `OTHERS`) that paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_type: Option<String>,
    /// The merchant data given at prepay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
    /// When it was paid (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    /// Who paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<Payer>,
    /// How much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<TransactionAmount>,
}

impl Transaction {
    /// Whether WeChat Pay says the order was paid (`SUCCESS`, or `REFUND` after payment).
    pub fn is_paid(&self) -> bool {
        matches!(self.trade_state, TradeState::Success | TradeState::Refund)
    }

    /// The order total in fen, when reported.
    pub fn total(&self) -> Option<i64> {
        self.amount.as_ref().and_then(|a| a.total)
    }

    /// The payer's openid, when reported.
    pub fn payer_openid(&self) -> Option<&str> {
        self.payer.as_ref().map(|p| p.openid.as_str())
    }

    /// Whether this is a `SUCCESS` payment of exactly `total` fen in CNY by `openid`: what an
    /// order must see before it counts as paid.
    pub fn is_paid_for(&self, total: i64, openid: &str) -> bool {
        let currency_ok = self
            .amount
            .as_ref()
            .and_then(|a| a.currency.as_deref())
            .is_none_or(|c| c == "CNY");
        self.trade_state == TradeState::Success
            && self.total() == Some(total)
            && self.payer_openid() == Some(openid)
            && currency_ok
    }
}

/// Who paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Payer {
    /// The payer's openid for the order's appid.
    #[serde(default)]
    pub openid: String,
}

/// The amounts of a payment, in fen.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TransactionAmount {
    /// The order total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// What the buyer paid (total minus discounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    /// `CNY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The buyer's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_currency: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_trade_no_accepts_only_wechat_pay_characters_and_lengths() {
        assert!(is_valid_out_trade_no("a|b*c_d-e"));
        assert!(is_valid_out_trade_no(&"9".repeat(32)));
        assert!(!is_valid_out_trade_no(&"9".repeat(33)));
        assert!(!is_valid_out_trade_no("订单号123456"));
        assert!(!is_valid_out_trade_no("abc/def"));
    }

    #[test]
    fn unknown_trade_state_does_not_fail_parsing() {
        let state: TradeState = serde_json::from_str("\"SOMETHING_NEW\"").unwrap();
        assert_eq!(state, TradeState::Unknown);
        let state: TradeState = serde_json::from_str("\"NOTPAY\"").unwrap();
        assert_eq!(state.as_str(), "NOTPAY");
    }

    #[test]
    fn order_validation_names_the_field() {
        let err = JsapiOrder::new("mall-000001", "", 1, "o")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("description"));
        let err = JsapiOrder::new("mall-000001", "x", 0, "o")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("total"));
        let err = JsapiOrder::new("mall-000001", "x", 1, " ")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("payer_openid"));
    }
}
