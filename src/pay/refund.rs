//! Refunds: what the merchant asks for ([`RefundRequest`]), what WeChat Pay answers
//! ([`Refund`]) and what it notifies ([`RefundNotice`]).

use serde::{Deserialize, Serialize};

use super::PayError;
use super::transaction::check_out_trade_no;

/// A refund of (part of) a paid order. WeChat Pay creates at most one refund per
/// `out_refund_no`: asking again with the same number answers the same refund, so a retried
/// or repeated call never refunds twice.
///
/// ```
/// use wxrest::pay::RefundRequest;
///
/// let refund = RefundRequest::new("mall-000042", "mall-000042-r1", 2_500, 2_500)
///     .reason("order cancelled");
/// assert_eq!(refund.refund, 2_500);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefundRequest {
    /// The paid order's `out_trade_no`.
    pub out_trade_no: String,
    /// The merchant's refund number: 1-64 characters of `[0-9A-Za-z_-|*@]`; the idempotency
    /// key of the refund.
    pub out_refund_no: String,
    /// The amount to refund, in fen (1..=total).
    pub refund: i64,
    /// The order total, in fen (must equal what was paid).
    pub total: i64,
    /// Shown to the buyer.
    pub reason: Option<String>,
    /// Where WeChat Pay sends the refund's outcome (`REFUND.*` notifications).
    pub notify_url: Option<String>,
}

impl RefundRequest {
    /// A refund of `refund` fen of the order `out_trade_no` (of `total` fen).
    pub fn new(
        out_trade_no: impl Into<String>,
        out_refund_no: impl Into<String>,
        refund: i64,
        total: i64,
    ) -> Self {
        Self {
            out_trade_no: out_trade_no.into(),
            out_refund_no: out_refund_no.into(),
            refund,
            total,
            reason: None,
            notify_url: None,
        }
    }

    /// Sets the reason shown to the buyer.
    #[must_use]
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets where the refund's outcome is notified.
    #[must_use]
    pub fn notify_url(mut self, url: impl Into<String>) -> Self {
        self.notify_url = Some(url.into());
        self
    }

    pub(super) fn validate(&self) -> Result<(), PayError> {
        check_out_trade_no(&self.out_trade_no)?;
        check_out_refund_no(&self.out_refund_no)?;
        if self.total < 1 || self.refund < 1 || self.refund > self.total {
            return Err(PayError::InvalidRequest(
                "refund must be between 1 fen and the order total".into(),
            ));
        }
        if self.reason.as_ref().is_some_and(|r| r.chars().count() > 80) {
            return Err(PayError::InvalidRequest(
                "reason must be at most 80 characters".into(),
            ));
        }
        Ok(())
    }
}

pub(super) fn check_out_refund_no(no: &str) -> Result<(), PayError> {
    let ok = (1..=64).contains(&no.len())
        && no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(PayError::InvalidRequest(
            "out_refund_no must be 1-64 characters of [0-9A-Za-z_-|*@]".into(),
        ))
    }
}

/// The state of a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[non_exhaustive]
pub enum RefundStatus {
    /// The money is back with the buyer.
    Success,
    /// Closed without refunding.
    Closed,
    /// Accepted, being processed: it will end `SUCCESS` (or `ABNORMAL`).
    Processing,
    /// Failed (e.g. the buyer's card was cancelled); needs manual handling.
    Abnormal,
    /// A status this version does not know.
    #[serde(other)]
    Unknown,
}

impl RefundStatus {
    /// Whether WeChat Pay accepted the refund (`PROCESSING` or `SUCCESS`).
    pub fn is_accepted(self) -> bool {
        matches!(self, Self::Processing | Self::Success)
    }
}

/// The amounts of a refund, in fen.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RefundAmount {
    /// The order total.
    pub total: i64,
    /// The amount refunded.
    pub refund: i64,
    /// What the buyer paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    /// What the buyer gets back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_refund: Option<i64>,
    /// `CNY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// A refund as WeChat Pay reports it (creating or querying it).
///
/// ```
/// use wxrest::pay::{Refund, RefundStatus};
///
/// let refund: Refund = serde_json::from_str(r#"{
///     "refund_id": "50000", "out_refund_no": "r1", "transaction_id": "4200",
///     "out_trade_no": "mall-000001", "status": "PROCESSING",
///     "amount": {"total": 100, "refund": 100, "currency": "CNY"}
/// }"#)?;
/// assert!(refund.status.is_accepted());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Refund {
    /// WeChat Pay's refund id.
    pub refund_id: String,
    /// The merchant's refund number.
    pub out_refund_no: String,
    /// WeChat Pay's order number.
    pub transaction_id: String,
    /// The merchant's order number.
    pub out_trade_no: String,
    /// The state.
    pub status: RefundStatus,
    /// `ORIGINAL`, `BALANCE`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Where the money goes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_received_account: Option<String>,
    /// When it succeeded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    /// When it was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    /// The amounts.
    pub amount: RefundAmount,
}

/// The content of a `REFUND.SUCCESS` / `REFUND.ABNORMAL` / `REFUND.CLOSED` notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RefundNotice {
    /// The merchant id.
    pub mchid: String,
    /// The merchant's order number.
    pub out_trade_no: String,
    /// WeChat Pay's order number.
    pub transaction_id: String,
    /// The merchant's refund number.
    pub out_refund_no: String,
    /// WeChat Pay's refund id.
    pub refund_id: String,
    /// The outcome.
    pub refund_status: RefundStatus,
    /// When it succeeded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    /// Where the money went back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_received_account: Option<String>,
    /// The amounts.
    pub amount: RefundAmount,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refund_larger_than_total_is_refused_before_calling() {
        let err = RefundRequest::new("mall-000001", "r1", 101, 100)
            .validate()
            .unwrap_err();
        assert!(matches!(err, PayError::InvalidRequest(_)));
    }

    #[test]
    fn out_refund_no_allows_at_sign_but_not_spaces() {
        assert!(check_out_refund_no("r@1").is_ok());
        assert!(check_out_refund_no("r 1").is_err());
        assert!(check_out_refund_no("").is_err());
    }
}
