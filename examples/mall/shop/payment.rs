//! WeChat Pay and the order lifecycle.
//!
//! ```text
//! pending --pay (WeChat Pay says SUCCESS)--> paid --ship (staff)--> shipped --confirm--> completed
//!    |                                        |
//!    +--cancel / unpaid timeout--> cancelled  +--cancel--> refunding --accepted--> refunded
//!                                      |                     (refused: back to paid)
//!                                      +--paid anyway--> refunding --accepted--> refunded
//!                                                        (refused: back to cancelled)
//! ```
//!
//! An order is `paid` only when WeChat Pay says so, in a verified notification or a verified
//! query answer, for exactly the order's total and its buyer's openid. Every transition is one
//! conditional `UPDATE ... WHERE status = <from>`: applied once however often a notification is
//! delivered, whichever instance receives it. Unpaid orders are swept by every instance; a row
//! is claimed with a lease (`sweeping_until`) before WeChat Pay is asked about it, and it is
//! cancelled locally only after WeChat Pay closed it (or never knew it).
//!
//! A refund is claimed before WeChat Pay is asked for it: `paid -> refunding` (remembering
//! where it came from in `refund_from`, with a lease in `refund_until`), so a `ship` landing
//! meanwhile finds the order no longer `paid`. Then the refund call, then the outcome:
//! accepted -> `refunded` and the stock returned, once (by the call's answer or the
//! `REFUND.SUCCESS` notification, whichever comes first); refused -> back to `refund_from`;
//! unknown (timeout, unverified answer) -> left `refunding` until the lease ends, then any
//! instance's sweeper queries the refund and records it, or sends it again with the same
//! `out_refund_no` when WeChat Pay does not know it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http::StatusCode;
use serde_json::{Value, json};
use sqlx::AnyConnection;
use wxrest::ApiError;
use wxrest::db::{Db, Dialect};
use wxrest::pay::{
    FakeWeChatPay, JsapiOrder, NotifyResource, PayError, PayNotification, Refund, RefundNotice,
    RefundRequest, RefundStatus, TradeState, Transaction, WxPayClient,
};
use wxrest::viewset::{ActionContext, ListCache};

use super::orders::{CANCELLED, Order, PENDING, load_items};

/// Paid at WeChat Pay, not shipped yet.
pub const PAID: &str = "paid";
/// Handed to the carrier by staff.
pub const SHIPPED: &str = "shipped";
/// The buyer confirmed receipt.
pub const COMPLETED: &str = "completed";
/// Cancelled after payment: the whole amount was refunded through WeChat Pay.
pub const REFUNDED: &str = "refunded";
/// A full refund claimed and asked of WeChat Pay, its outcome not recorded yet.
pub const REFUNDING: &str = "refunding";

/// Seconds an order may stay unpaid unless `MALL_UNPAID_TIMEOUT` says.
pub const DEFAULT_UNPAID_TIMEOUT: u64 = 1800;

/// How often each instance looks for unpaid orders past their timeout.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(3);

/// How long a sweeper holds an order it claimed (longer than the WeChat Pay calls it makes).
const SWEEP_LEASE_SECS: i64 = 60;

/// Orders claimed per sweep, at most.
const SWEEP_BATCH: i64 = 100;

/// How long a refund claim is held before a sweeper may finish it (longer than the WeChat Pay
/// call it makes).
const REFUND_LEASE_SECS: i64 = 60;

/// Everything the payment routes and the sweeper need. Cheap to clone.
#[derive(Clone)]
pub struct Payments {
    pub db: Db,
    /// `None`: payment is disabled (no `WXPAY_MCHID` on a production address).
    pub pay: Option<WxPayClient>,
    pub lists: ListCache,
    /// `MALL_UNPAID_TIMEOUT`, counted from the order's creation.
    pub unpaid_timeout: Duration,
    /// The built-in fake WeChat Pay `pay` talks to in development: it lives as long as the
    /// routes do.
    pub dev_fake: Option<Arc<FakeWeChatPay>>,
}

/// Why a payment step failed. Renders DRF's `{"detail", "code"}`.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// No WeChat Pay configuration on a production address.
    #[error("payment is not configured on this server")]
    Disabled,
    /// The order is not in a state that allows the transition.
    #[error("{0}")]
    InvalidState(&'static str),
    /// The caller may see the order but not do this to it.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The buyer has no WeChat openid (a password account): WeChat Pay needs one.
    #[error("the buyer has no WeChat account to pay with")]
    NoOpenid,
    /// WeChat Pay has a payment for an order number we do not know.
    #[error("no order has this out_trade_no")]
    UnknownOrder,
    /// A verified payment that is not exactly the order's total by its buyer.
    #[error("the payment does not match the order's total and buyer")]
    Mismatch,
    /// WeChat Pay did not accept the refund.
    #[error("WeChat Pay did not accept the refund")]
    RefundRefused,
    /// WeChat Pay refused, failed, or could not be verified.
    #[error(transparent)]
    Pay(#[from] PayError),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<PaymentError> for ApiError {
    fn from(err: PaymentError) -> Self {
        match err {
            PaymentError::Disabled => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "payment_unavailable",
                "Payment is not available on this server.",
            ),
            PaymentError::InvalidState(detail) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_state", detail)
            }
            PaymentError::Forbidden(detail) => {
                ApiError::new(StatusCode::FORBIDDEN, "permission_denied", detail)
            }
            PaymentError::NoOpenid => ApiError::new(
                StatusCode::CONFLICT,
                "wechat_account_required",
                "Log in with WeChat to pay for an order.",
            ),
            PaymentError::UnknownOrder => ApiError::not_found(),
            PaymentError::Mismatch => ApiError::new(
                StatusCode::CONFLICT,
                "payment_mismatch",
                "The payment does not match the order.",
            ),
            PaymentError::RefundRefused => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "refund_refused",
                "WeChat Pay did not accept the refund.",
            ),
            PaymentError::Pay(e) => e.into(),
            PaymentError::Db(e) => wxrest::BackendError::from(e).into(),
        }
    }
}

impl IntoResponse for PaymentError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

/// The answer to WeChat Pay when a verified notification could not be applied:
/// `{"code": "FAIL", "message"}` (it delivers the notification again later).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotifyFailure(PaymentError);

impl IntoResponse for NotifyFailure {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            PaymentError::UnknownOrder => StatusCode::NOT_FOUND,
            PaymentError::Mismatch => StatusCode::BAD_REQUEST,
            PaymentError::Disabled => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &self.0 {
            PaymentError::Db(_) => "temporary failure; deliver again later".to_owned(),
            other => other.to_string(),
        };
        (status, Json(json!({"code": "FAIL", "message": message}))).into_response()
    }
}

/// An order's payment columns.
#[derive(Debug, Clone)]
pub struct PayRow {
    pub id: i64,
    pub user_id: i64,
    pub status: String,
    pub total: i64,
    pub created_at: i64,
    pub out_trade_no: Option<String>,
    pub prepay_id: Option<String>,
}

type RawRow = (i64, i64, String, i64, i64, Option<String>, Option<String>);

const COLUMNS: &str = "id, user_id, status, total, created_at, out_trade_no, prepay_id";

impl From<RawRow> for PayRow {
    fn from(r: RawRow) -> Self {
        Self {
            id: r.0,
            user_id: r.1,
            status: r.2,
            total: r.3,
            created_at: r.4,
            out_trade_no: r.5,
            prepay_id: r.6,
        }
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A new `out_trade_no`: `mall<id>-<8 random hex>`, 14 to 32 characters of `[0-9a-z-]`, so a
/// reset database never reuses a number WeChat Pay already knows.
pub fn new_out_trade_no(order_id: i64) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("mall{order_id}-{}", &random[..8])
}

/// The refund number of an order: one per order, so WeChat Pay refunds it at most once.
pub fn out_refund_no(out_trade_no: &str) -> String {
    format!("{out_trade_no}-refund")
}

/// Gives the order its `out_trade_no` unless it has one (in the transaction placing it).
pub async fn assign_out_trade_no(
    conn: &mut AnyConnection,
    d: Dialect,
    order_id: i64,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "UPDATE orders SET out_trade_no = {} WHERE id = {} AND out_trade_no IS NULL",
        d.placeholder(1),
        d.placeholder(2)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(new_out_trade_no(order_id))
        .bind(order_id)
        .execute(conn)
        .await?;
    Ok(())
}

impl Payments {
    fn client(&self) -> Result<&WxPayClient, PaymentError> {
        self.pay.as_ref().ok_or(PaymentError::Disabled)
    }

    fn deadline(&self, created_at: i64) -> i64 {
        let timeout = i64::try_from(self.unpaid_timeout.as_secs()).unwrap_or(i64::MAX);
        created_at.saturating_add(timeout)
    }

    async fn load_where(
        &self,
        column: &str,
        value: impl ToString,
        by_id: Option<i64>,
    ) -> Result<Option<PayRow>, sqlx::Error> {
        let d = self.db.dialect();
        let sql = format!(
            "SELECT {COLUMNS} FROM orders WHERE {column} = {}",
            d.placeholder(1)
        );
        let query = sqlx::query_as::<_, RawRow>(sqlx::AssertSqlSafe(sql));
        let query = match by_id {
            Some(id) => query.bind(id),
            None => query.bind(value.to_string()),
        };
        Ok(query
            .fetch_optional(self.db.pool())
            .await?
            .map(PayRow::from))
    }

    /// The order's payment columns.
    pub async fn load(&self, id: i64) -> Result<Option<PayRow>, sqlx::Error> {
        self.load_where("id", "", Some(id)).await
    }

    async fn load_by_out_trade_no(&self, no: &str) -> Result<Option<PayRow>, sqlx::Error> {
        self.load_where("out_trade_no", no, None).await
    }

    async fn openid(&self, user_id: i64) -> Result<Option<String>, sqlx::Error> {
        let sql = format!(
            "SELECT openid FROM users WHERE id = {}",
            self.db.dialect().placeholder(1)
        );
        let row: Option<(Option<String>,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.and_then(|(openid,)| openid).filter(|o| !o.is_empty()))
    }

    /// `UPDATE orders SET status = to WHERE id = ? AND status = from`: whether it moved.
    async fn transition(&self, id: i64, from: &str, to: &str) -> Result<bool, sqlx::Error> {
        let d = self.db.dialect();
        let sql = format!(
            "UPDATE orders SET status = {} WHERE id = {} AND status = {}",
            d.placeholder(1),
            d.placeholder(2),
            d.placeholder(3)
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to)
            .bind(id)
            .bind(from)
            .execute(self.db.pool())
            .await?;
        Ok(self.status_moved(done.rows_affected(), id).await)
    }

    /// Whether a conditional status update of order `id` moved it (one row); when it did,
    /// cached lists learn that its `status` changed.
    async fn status_moved(&self, rows_affected: u64, id: i64) -> bool {
        let moved = rows_affected == 1;
        if moved {
            self.changed("orders", &["status"], &[id]).await;
        }
        moved
    }

    /// Tells cached lists that `columns` of the rows `ids` of `table` changed outside their
    /// viewsets: pages that neither filter nor order by them stay cached.
    async fn changed(&self, table: &str, columns: &[&str], ids: &[i64]) {
        if let Err(err) = self.lists.changed(table, columns, ids).await {
            tracing::warn!(table, error = %err, "could not mark cached lists stale");
        }
    }

    /// pending -> cancelled, returning the stock, in one transaction: whether it moved.
    async fn cancel_locally(&self, id: i64) -> Result<bool, sqlx::Error> {
        self.cancel_where(id, "").await
    }

    /// pending -> cancelled only while no payment parameters were handed out (no `prepay_id`):
    /// a `pay` storing its prepay meanwhile makes this a no-op, so the order is closed at
    /// WeChat Pay before it is cancelled.
    async fn cancel_unprepaid(&self, id: i64) -> Result<bool, sqlx::Error> {
        self.cancel_where(id, " AND prepay_id IS NULL").await
    }

    async fn cancel_where(&self, id: i64, and: &'static str) -> Result<bool, sqlx::Error> {
        let d = self.db.dialect();
        let mut tx = self.db.pool().begin().await?;
        let sql = format!(
            "UPDATE orders SET status = {}, sweeping_until = NULL WHERE id = {} AND status = {}{and}",
            d.placeholder(1),
            d.placeholder(2),
            d.placeholder(3)
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(CANCELLED)
            .bind(id)
            .bind(PENDING)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let goods = return_stock(&mut tx, d, id).await?;
        tx.commit().await?;
        self.changed("orders", &["status"], &[id]).await;
        self.changed("goods", &["stock"], &goods).await;
        tracing::info!(order_id = id, "order cancelled, stock returned");
        Ok(true)
    }

    /// Closes the order at WeChat Pay (when it may know it), then cancels it here. A close
    /// answered `ORDERPAID` means it was paid meanwhile: it is queried and marked paid.
    async fn close_and_cancel(&self, row: &PayRow) -> Result<Closed, PaymentError> {
        match (&self.pay, &row.out_trade_no) {
            (Some(client), Some(no)) => match client.close_order(no).await {
                Ok(()) | Err(PayError::NotFound { .. } | PayError::OrderClosed) => {}
                Err(PayError::OrderPaid) => {
                    let tx = client.query_order(no).await?;
                    self.apply_payment(&tx).await?;
                    return Ok(Closed::PaidMeanwhile);
                }
                Err(e) => return Err(e.into()),
            },
            // Placed at WeChat Pay under an earlier configuration: it cannot be closed now.
            (None, Some(_)) if row.prepay_id.is_some() => return Err(PaymentError::Disabled),
            _ => {}
        }
        if self.cancel_locally(row.id).await? {
            Ok(Closed::Cancelled)
        } else {
            Ok(Closed::Moved)
        }
    }

    /// Applies what WeChat Pay says about a payment (verified by the caller: a notification
    /// or a query answer). `pending -> paid` for exactly the order's total and buyer, once; a
    /// payment for a cancelled order is refunded.
    pub async fn apply_payment(&self, tx: &Transaction) -> Result<Applied, PaymentError> {
        if tx.trade_state != TradeState::Success {
            return Ok(Applied::NotPaid);
        }
        let row = self
            .load_by_out_trade_no(&tx.out_trade_no)
            .await?
            .ok_or(PaymentError::UnknownOrder)?;
        let openid = self.openid(row.user_id).await?;
        if !openid.is_some_and(|o| tx.is_paid_for(row.total, &o)) {
            tracing::error!(
                order_id = row.id,
                out_trade_no = %tx.out_trade_no,
                paid = ?tx.total(),
                total = row.total,
                "verified payment does not match the order: not applied"
            );
            return Err(PaymentError::Mismatch);
        }
        let d = self.db.dialect();
        let [status, paid_at, transaction, id, from] = d.numbered();
        let sql = format!(
            "UPDATE orders SET status = {status}, paid_at = {paid_at}, transaction_id = {transaction}, \
             sweeping_until = NULL WHERE id = {id} AND status = {from}"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(PAID)
            .bind(now())
            .bind(tx.transaction_id.clone())
            .bind(row.id)
            .bind(PENDING)
            .execute(self.db.pool())
            .await?;
        if done.rows_affected() == 1 {
            self.changed("orders", &["status"], &[row.id]).await;
            tracing::info!(order_id = row.id, total = row.total, "order paid");
            return Ok(Applied::Paid);
        }
        let row = self.load(row.id).await?.ok_or(PaymentError::UnknownOrder)?;
        match row.status.as_str() {
            PAID | SHIPPED | COMPLETED | REFUNDING | REFUNDED => Ok(Applied::Already),
            CANCELLED => {
                tracing::warn!(
                    order_id = row.id,
                    "payment for a cancelled order: refunding it"
                );
                match self.refund(&row, CANCELLED).await? {
                    Some(Refunded::Done) => Ok(Applied::RefundedLate),
                    Some(Refunded::Pending(_)) => Ok(Applied::Refunding),
                    // Back to cancelled: answered FAIL, WeChat Pay delivers it again.
                    Some(Refunded::Refused(err)) => Err(err),
                    // Another delivery claimed the refund first.
                    None => match current(self, row.id).await?.status.as_str() {
                        REFUNDING | REFUNDED => Ok(Applied::Already),
                        _ => Err(PaymentError::InvalidState("The order changed; try again.")),
                    },
                }
            }
            _ => Err(PaymentError::InvalidState("The order changed; try again.")),
        }
    }

    /// The one full refund of the order (`out_refund_no` derived from it, so WeChat Pay
    /// refunds once however often this runs): claims it (`from -> refunding`), asks WeChat
    /// Pay, records the outcome. `None` when the order was not in `from` (nothing was asked).
    async fn refund(&self, row: &PayRow, from: &str) -> Result<Option<Refunded>, PaymentError> {
        let client = self.client()?;
        let no = row
            .out_trade_no
            .as_deref()
            .ok_or(PaymentError::InvalidState("The order was never paid."))?;
        if !self.claim_refund(row.id, from).await? {
            return Ok(None);
        }
        self.send_refund(client, row.id, no, row.total)
            .await
            .map(Some)
    }

    /// `from -> refunding`, remembering `from` and leasing the claim: whether it moved.
    async fn claim_refund(&self, id: i64, from: &str) -> Result<bool, sqlx::Error> {
        let d = self.db.dialect();
        let [status, refund_from, until, id_p, was] = d.numbered();
        let sql = format!(
            "UPDATE orders SET status = {status}, refund_from = {refund_from}, \
             refund_until = {until} WHERE id = {id_p} AND status = {was}"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(REFUNDING)
            .bind(from)
            .bind(now() + REFUND_LEASE_SECS)
            .bind(id)
            .bind(from)
            .execute(self.db.pool())
            .await?;
        Ok(self.status_moved(done.rows_affected(), id).await)
    }

    /// Asks WeChat Pay for the full refund of a claimed (`refunding`) order and records what
    /// it answered.
    async fn send_refund(
        &self,
        client: &WxPayClient,
        id: i64,
        out_trade_no: &str,
        total: i64,
    ) -> Result<Refunded, PaymentError> {
        let request = RefundRequest::new(out_trade_no, out_refund_no(out_trade_no), total, total)
            .reason("order cancelled")
            .notify_url(client.config().notify_url.clone());
        match client.refund(&request).await {
            Ok(refund) => self.record_refund(id, &refund).await,
            Err(err) if err.is_refusal() => {
                tracing::warn!(order_id = id, error = %err, "WeChat Pay refused the refund");
                self.release_refund(id, None).await?;
                Ok(Refunded::Refused(err.into()))
            }
            Err(err) => {
                tracing::warn!(
                    order_id = id,
                    error = %err,
                    "refund outcome unknown: left refunding for the sweeper"
                );
                Ok(Refunded::Pending(err.into()))
            }
        }
    }

    /// Records a verified refund answer for a `refunding` order: accepted -> `refunded` (stock
    /// back when it was paid); closed or abnormal -> back where it came from.
    async fn record_refund(&self, id: i64, refund: &Refund) -> Result<Refunded, PaymentError> {
        let status = refund_status_name(&refund.status);
        match refund.status {
            RefundStatus::Closed | RefundStatus::Abnormal => {
                tracing::warn!(
                    order_id = id,
                    status,
                    "WeChat Pay did not accept the refund"
                );
                self.release_refund(id, Some(&status)).await?;
                return Ok(Refunded::Refused(PaymentError::RefundRefused));
            }
            accepted if accepted.is_accepted() => {}
            // A status this version does not know: neither refunded nor refused.
            _ => {
                return Ok(Refunded::Pending(PaymentError::Pay(PayError::Malformed(
                    format!("unknown refund status {status}"),
                ))));
            }
        }
        if self.finish_refund(id, &refund.refund_id, &status).await? {
            return Ok(Refunded::Done);
        }
        // Its notification (or a sweeper) recorded it first.
        match current(self, id).await?.status.as_str() {
            REFUNDED => Ok(Refunded::Done),
            _ => Err(PaymentError::InvalidState("The order changed; try again.")),
        }
    }

    /// `refunding -> refunded`, returning the stock when the refund came from `paid`, in one
    /// transaction: whether it moved (so the stock returns exactly once).
    async fn finish_refund(
        &self,
        id: i64,
        refund_id: &str,
        refund_status: &str,
    ) -> Result<bool, sqlx::Error> {
        let d = self.db.dialect();
        let mut tx = self.db.pool().begin().await?;
        let [status, refund_id_p, refund_status_p, id_p, was] = d.numbered();
        let sql = format!(
            "UPDATE orders SET status = {status}, refund_id = {refund_id_p}, \
             refund_status = {refund_status_p}, refund_until = NULL \
             WHERE id = {id_p} AND status = {was}"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(REFUNDED)
            .bind(refund_id.to_owned())
            .bind(refund_status.to_owned())
            .bind(id)
            .bind(REFUNDING)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        // Read under the row lock the update took: the claim that set it is this one.
        let sql = format!(
            "SELECT refund_from FROM orders WHERE id = {}",
            d.placeholder(1)
        );
        let (from,): (Option<String>,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let goods = match from.as_deref() {
            Some(PAID) => return_stock(&mut tx, d, id).await?,
            _ => Vec::new(),
        };
        tx.commit().await?;
        self.changed("orders", &["status"], &[id]).await;
        self.changed("goods", &["stock"], &goods).await;
        tracing::info!(order_id = id, from = ?from, "order refunded");
        Ok(true)
    }

    /// `refunding -> refund_from` after a definite refusal (recording the refund's status
    /// when WeChat Pay gave one): whether it moved.
    async fn release_refund(
        &self,
        id: i64,
        refund_status: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let d = self.db.dialect();
        let [refund_status_p, id_p, was] = d.numbered();
        let sql = format!(
            "UPDATE orders SET status = refund_from, refund_until = NULL, \
             refund_status = COALESCE({refund_status_p}, refund_status) \
             WHERE id = {id_p} AND status = {was} AND refund_from IS NOT NULL"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(refund_status.map(str::to_owned))
            .bind(id)
            .bind(REFUNDING)
            .execute(self.db.pool())
            .await?;
        Ok(self.status_moved(done.rows_affected(), id).await)
    }

    /// A verified refund notification: `REFUND.SUCCESS` of the order's full refund finishes
    /// `refunding -> refunded` (once, even before the refund call has returned); the refund's
    /// status is recorded on a refunded order. Anything else is left to the refund call's
    /// answer or the sweeper's query.
    async fn apply_refund_notice(&self, notice: &RefundNotice) -> Result<(), PaymentError> {
        let Some(row) = self.load_by_out_trade_no(&notice.out_trade_no).await? else {
            tracing::warn!(out_trade_no = %notice.out_trade_no, "refund notification for no order");
            return Ok(());
        };
        if notice.out_refund_no != out_refund_no(&notice.out_trade_no) {
            tracing::warn!(order_id = row.id, out_refund_no = %notice.out_refund_no, "refund notification for another refund: ignored");
            return Ok(());
        }
        let status = refund_status_name(&notice.refund_status);
        if notice.refund_status == RefundStatus::Success
            && self
                .finish_refund(row.id, &notice.refund_id, &status)
                .await?
        {
            return Ok(());
        }
        let d = self.db.dialect();
        let [refund_status_p, id_p, was] = d.numbered();
        let sql = format!(
            "UPDATE orders SET refund_status = {refund_status_p} WHERE id = {id_p} AND status = {was}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(status)
            .bind(row.id)
            .bind(REFUNDED)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// A `refunding` order whose claim's lease ended, claimed again by this sweep: asks WeChat
    /// Pay about the refund and records it, or sends it (same `out_refund_no`) when WeChat Pay
    /// does not know it.
    async fn settle_refund(
        &self,
        id: i64,
        out_trade_no: &str,
        total: i64,
    ) -> Result<Refunded, PaymentError> {
        let client = self.client()?;
        match client.query_refund(&out_refund_no(out_trade_no)).await {
            Ok(refund) => self.record_refund(id, &refund).await,
            Err(PayError::NotFound { .. }) => {
                self.send_refund(client, id, out_trade_no, total).await
            }
            Err(err) => Ok(Refunded::Pending(err.into())),
        }
    }

    /// One unpaid order past its timeout, claimed by this instance: ask WeChat Pay, then mark
    /// it paid or close and cancel it.
    async fn settle_unpaid(&self, row: &PayRow) -> Result<Swept, PaymentError> {
        let (client, no) = match (&self.pay, &row.out_trade_no) {
            (Some(client), Some(no)) => (client, no),
            // Never placed at WeChat Pay: nothing to close.
            (_, None) => {
                return Ok(swept_cancel(self.cancel_locally(row.id).await?));
            }
            (None, Some(_)) => {
                if row.prepay_id.is_some() {
                    return Err(PaymentError::Disabled);
                }
                return Ok(swept_cancel(self.cancel_locally(row.id).await?));
            }
        };
        match client.query_order(no).await {
            Ok(tx) if tx.trade_state == TradeState::Success => {
                self.apply_payment(&tx).await?;
                Ok(Swept::Paid)
            }
            Ok(_) => match self.close_and_cancel(row).await? {
                Closed::Cancelled => Ok(Swept::Cancelled),
                Closed::PaidMeanwhile => Ok(Swept::Paid),
                Closed::Moved => Ok(Swept::Skipped),
            },
            // ORDER_NOT_EXIST: never asked to pay; cancel without a close call.
            Err(PayError::NotFound { .. }) => Ok(swept_cancel(self.cancel_locally(row.id).await?)),
            Err(e) => Err(e.into()),
        }
    }
}

fn swept_cancel(moved: bool) -> Swept {
    if moved {
        Swept::Cancelled
    } else {
        Swept::Skipped
    }
}

fn refund_status_name(status: &wxrest::pay::RefundStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "UNKNOWN".to_owned())
}

/// What [`Payments::apply_payment`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// `pending -> paid`, now.
    Paid,
    /// It had been applied before (a redelivery, or the sweeper's query came first).
    Already,
    /// The order had been cancelled: the payment was refunded.
    RefundedLate,
    /// The order had been cancelled: its refund was claimed and asked for, with no answer
    /// yet; a sweeper finishes it.
    Refunding,
    /// Not a successful payment: nothing to apply.
    NotPaid,
}

/// What became of a refund this instance claimed.
enum Refunded {
    /// Accepted by WeChat Pay and recorded `refunded` (by this call, or first by its
    /// notification).
    Done,
    /// WeChat Pay refused it: the order is back where it came from.
    Refused(PaymentError),
    /// No verified answer: the order stays `refunding` and a sweeper finishes it.
    Pending(PaymentError),
}

enum Closed {
    Cancelled,
    PaidMeanwhile,
    /// Someone else moved the order first.
    Moved,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Orders claimed by this sweep.
    pub claimed: usize,
    /// Closed at WeChat Pay (or never placed there) and cancelled, stock returned.
    pub cancelled: usize,
    /// Found paid at WeChat Pay (their notification was lost) and marked paid.
    pub paid: usize,
    /// Left for a later sweep (WeChat Pay failed, or the order moved meanwhile).
    pub skipped: usize,
    /// Interrupted refunds (`refunding` past their lease) that WeChat Pay accepted, now
    /// recorded `refunded`.
    pub refunded: usize,
    /// Interrupted refunds WeChat Pay refused: back to the state they came from.
    pub refund_refused: usize,
}

enum Swept {
    Cancelled,
    Paid,
    Skipped,
}

/// Puts every item of the order back in stock.
async fn return_stock(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    d: Dialect,
    order_id: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let sql = format!(
        "SELECT goods, quantity FROM order_items WHERE order_id = {}",
        d.placeholder(1)
    );
    let items: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_all(&mut **tx)
        .await?;
    // Ascending goods ids, as placing an order locks them: no deadlocks.
    let mut items = items;
    items.sort_unstable();
    let goods = items.iter().map(|(goods, _)| *goods).collect();
    for (goods, quantity) in items {
        let sql = format!(
            "UPDATE goods SET stock = stock + {} WHERE id = {}",
            d.placeholder(1),
            d.placeholder(2)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(quantity)
            .bind(goods)
            .execute(&mut **tx)
            .await?;
    }
    Ok(goods)
}

/// One sweep: claims (a lease in `sweeping_until`, by a conditional UPDATE, so one instance
/// acts on each order) the pending orders older than the unpaid timeout and settles each
/// with WeChat Pay. An order whose settling fails keeps its lease until it expires, then the
/// next sweep (on any instance) tries again.
pub async fn sweep_once(payments: &Payments) -> Result<SweepReport, sqlx::Error> {
    let db = &payments.db;
    let d = db.dialect();
    let now = now();
    let timeout = i64::try_from(payments.unpaid_timeout.as_secs()).unwrap_or(i64::MAX);
    let cutoff = now.saturating_sub(timeout);
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE status = {} AND created_at <= {} \
         AND (sweeping_until IS NULL OR sweeping_until < {}) ORDER BY id LIMIT {SWEEP_BATCH}",
        d.placeholder(1),
        d.placeholder(2),
        d.placeholder(3)
    );
    let rows: Vec<RawRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(PENDING)
        .bind(cutoff)
        .bind(now)
        .fetch_all(db.pool())
        .await?;
    let mut report = SweepReport::default();
    let claim = format!(
        "UPDATE orders SET sweeping_until = {} WHERE id = {} AND status = {} \
         AND (sweeping_until IS NULL OR sweeping_until < {})",
        d.placeholder(1),
        d.placeholder(2),
        d.placeholder(3),
        d.placeholder(4)
    );
    for row in rows.into_iter().map(PayRow::from) {
        let done = sqlx::query(sqlx::AssertSqlSafe(claim.clone()))
            .bind(now + SWEEP_LEASE_SECS)
            .bind(row.id)
            .bind(PENDING)
            .bind(now)
            .execute(db.pool())
            .await?;
        if done.rows_affected() != 1 {
            continue; // another instance holds it, or it moved
        }
        report.claimed += 1;
        match payments.settle_unpaid(&row).await {
            Ok(Swept::Cancelled) => report.cancelled += 1,
            Ok(Swept::Paid) => report.paid += 1,
            Ok(Swept::Skipped) => report.skipped += 1,
            Err(err) => {
                report.skipped += 1;
                tracing::warn!(order_id = row.id, error = %err, "unpaid order not settled; retrying later");
            }
        }
    }
    sweep_refunds(payments, now, &mut report).await?;
    Ok(report)
}

/// Finishes interrupted refunds: `refunding` orders whose claim's lease ended (the instance
/// that claimed them crashed, or WeChat Pay's answer was lost). Each is claimed again with a
/// new lease by a conditional UPDATE, so one instance acts on it.
async fn sweep_refunds(
    payments: &Payments,
    now: i64,
    report: &mut SweepReport,
) -> Result<(), sqlx::Error> {
    let db = &payments.db;
    let d = db.dialect();
    let sql = format!(
        "SELECT id, out_trade_no, total FROM orders WHERE status = {} AND refund_until < {} \
         ORDER BY id LIMIT {SWEEP_BATCH}",
        d.placeholder(1),
        d.placeholder(2)
    );
    let rows: Vec<(i64, Option<String>, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(REFUNDING)
        .bind(now)
        .fetch_all(db.pool())
        .await?;
    let [until, id_p, was, before] = d.numbered();
    let claim = format!(
        "UPDATE orders SET refund_until = {until} WHERE id = {id_p} AND status = {was} \
         AND refund_until < {before}"
    );
    for (id, no, total) in rows {
        let Some(no) = no else {
            continue; // never placed at WeChat Pay: never claimed for a refund
        };
        let done = sqlx::query(sqlx::AssertSqlSafe(claim.clone()))
            .bind(now + REFUND_LEASE_SECS)
            .bind(id)
            .bind(REFUNDING)
            .bind(now)
            .execute(db.pool())
            .await?;
        if done.rows_affected() != 1 {
            continue; // another instance holds it, or it was finished meanwhile
        }
        report.claimed += 1;
        match payments.settle_refund(id, &no, total).await {
            Ok(Refunded::Done) => report.refunded += 1,
            Ok(Refunded::Refused(_)) => report.refund_refused += 1,
            Ok(Refunded::Pending(err)) | Err(err) => {
                report.skipped += 1;
                tracing::warn!(order_id = id, error = %err, "interrupted refund not settled; retrying later");
            }
        }
    }
    Ok(())
}

/// Sweeps every [`SWEEP_INTERVAL`] until the task is aborted. Every instance runs one; the
/// database decides which of them acts on each order.
pub fn spawn_sweeper(payments: Payments) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match sweep_once(&payments).await {
                Ok(report) if report.claimed > 0 => {
                    tracing::info!(?report, "unpaid orders and interrupted refunds swept");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "sweeping orders failed"),
            }
        }
    })
}

fn identity_of(ctx: &ActionContext<Order>) -> Result<(i64, bool), ApiError> {
    ctx.ctx
        .identity
        .as_ref()
        .map(|i| (i.user_id, i.is_staff))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "not_authenticated",
                "Authentication credentials were not provided.",
            )
        })
}

/// The order as the API shows it, with `status` as now stored.
async fn answer(payments: &Payments, mut order: Order, status: &str) -> Result<Response, ApiError> {
    order.status = status.to_owned();
    let mut loaded = load_items(&payments.db, vec![order]).await?;
    Ok(Json(loaded.pop()).into_response())
}

async fn current(payments: &Payments, id: i64) -> Result<PayRow, PaymentError> {
    payments.load(id).await?.ok_or(PaymentError::UnknownOrder)
}

/// `POST /mall/orders/{id}/pay/` (the buyer, a pending order): the object
/// `wx.requestPayment` takes. The order is placed at WeChat Pay once; asking again signs the
/// same `prepay_id` afresh.
pub async fn pay(payments: Payments, ctx: ActionContext<Order>) -> Result<Response, ApiError> {
    let (user_id, _) = identity_of(&ctx)?;
    let Some(order) = ctx.object else {
        return Err(ApiError::not_found());
    };
    Ok(pay_order(&payments, order.id, user_id).await?)
}

async fn pay_order(payments: &Payments, id: i64, user_id: i64) -> Result<Response, PaymentError> {
    let client = payments.client()?;
    let mut row = current(payments, id).await?;
    if row.user_id != user_id {
        return Err(PaymentError::Forbidden(
            "Only the buyer can pay for an order.",
        ));
    }
    if row.status != PENDING {
        return Err(PaymentError::InvalidState(
            "Only pending orders can be paid.",
        ));
    }
    let deadline = payments.deadline(row.created_at);
    if now() >= deadline {
        return Err(PaymentError::InvalidState(
            "The order was not paid in time and is being cancelled.",
        ));
    }
    if let Some(prepay_id) = &row.prepay_id {
        return Ok(Json(client.request_payment(prepay_id)?).into_response());
    }
    if row.out_trade_no.is_none() {
        let mut conn = payments.db.pool().acquire().await?;
        assign_out_trade_no(&mut conn, payments.db.dialect(), id).await?;
        drop(conn);
        row = current(payments, id).await?;
    }
    let no = row.out_trade_no.clone().ok_or(PaymentError::InvalidState(
        "The order has no payment number.",
    ))?;
    let openid = payments
        .openid(row.user_id)
        .await?
        .ok_or(PaymentError::NoOpenid)?;
    let expire = chrono::DateTime::from_timestamp(deadline, 0).unwrap_or_else(chrono::Utc::now);
    let order = JsapiOrder::new(no, format!("wxrest mall order {id}"), row.total, openid)
        .attach(format!("order:{id}"))
        .time_expire(expire);
    // An unverified or refused answer ends here: nothing is stored.
    let prepay_id = client.prepay_jsapi(&order).await?;
    let d = payments.db.dialect();
    let sql = format!(
        "UPDATE orders SET prepay_id = {} WHERE id = {} AND status = {} AND prepay_id IS NULL",
        d.placeholder(1),
        d.placeholder(2),
        d.placeholder(3)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&prepay_id)
        .bind(id)
        .bind(PENDING)
        .execute(payments.db.pool())
        .await?;
    let row = current(payments, id).await?;
    if row.status != PENDING {
        return Err(PaymentError::InvalidState(
            "Only pending orders can be paid.",
        ));
    }
    // A concurrent request may have stored its prepay_id first (WeChat Pay answers the same
    // one for the same order): hand out the stored one.
    let stored = row.prepay_id.unwrap_or(prepay_id);
    Ok(Json(client.request_payment(&stored)?).into_response())
}

/// `POST /mall/orders/{id}/ship/` (staff): paid -> shipped.
pub async fn ship(payments: Payments, ctx: ActionContext<Order>) -> Result<Response, ApiError> {
    let step = Step {
        allowed: |_: &Order, _: i64, is_staff: bool| is_staff,
        denied: "Only staff can ship orders.",
        from: PAID,
        to: SHIPPED,
        wrong_state: "Only paid orders can be shipped.",
    };
    step.take(payments, ctx).await
}

/// `POST /mall/orders/{id}/confirm/` (the buyer): shipped -> completed.
pub async fn confirm(payments: Payments, ctx: ActionContext<Order>) -> Result<Response, ApiError> {
    let step = Step {
        allowed: |order: &Order, user_id: i64, _: bool| order.user_id == user_id,
        denied: "Only the buyer can confirm receipt.",
        from: SHIPPED,
        to: COMPLETED,
        wrong_state: "Only shipped orders can be confirmed.",
    };
    step.take(payments, ctx).await
}

/// A lifecycle step without WeChat Pay: who may take it, then `from` -> `to` in one
/// conditional update (409 when the order is in another state).
struct Step<F> {
    allowed: F,
    denied: &'static str,
    from: &'static str,
    to: &'static str,
    wrong_state: &'static str,
}

impl<F: FnOnce(&Order, i64, bool) -> bool> Step<F> {
    async fn take(
        self,
        payments: Payments,
        ctx: ActionContext<Order>,
    ) -> Result<Response, ApiError> {
        let (user_id, is_staff) = identity_of(&ctx)?;
        let Some(order) = ctx.object else {
            return Err(ApiError::not_found());
        };
        if !(self.allowed)(&order, user_id, is_staff) {
            return Err(PaymentError::Forbidden(self.denied).into());
        }
        if !payments
            .transition(order.id, self.from, self.to)
            .await
            .map_err(PaymentError::from)?
        {
            return Err(PaymentError::InvalidState(self.wrong_state).into());
        }
        answer(&payments, order, self.to).await
    }
}

/// `POST /mall/orders/{id}/cancel/`: pending -> cancelled (closed at WeChat Pay first, stock
/// back); paid -> refunding (claimed first, so a concurrent `ship` loses) -> refunded (one
/// full refund, stock back) or back to paid when WeChat Pay refuses; anything else 409.
pub async fn cancel(payments: Payments, ctx: ActionContext<Order>) -> Result<Response, ApiError> {
    let Some(order) = ctx.object else {
        return Err(ApiError::not_found());
    };
    let row = current(&payments, order.id).await?;
    let status = match row.status.as_str() {
        // Never handed payment parameters: nobody can pay it, nothing to close. The update
        // requires that still to hold, so a `pay` that stored its prepay meanwhile sends this
        // through the close below.
        PENDING
            if row.prepay_id.is_none()
                && payments
                    .cancel_unprepaid(row.id)
                    .await
                    .map_err(PaymentError::from)? =>
        {
            CANCELLED
        }
        PENDING => match payments
            .close_and_cancel(&current(&payments, order.id).await?)
            .await?
        {
            Closed::Cancelled => CANCELLED,
            Closed::PaidMeanwhile => {
                return Err(PaymentError::InvalidState(
                    "The order has just been paid; cancel it again to refund it.",
                )
                .into());
            }
            // The sweeper (or a concurrent cancel) got there first.
            Closed::Moved if current(&payments, order.id).await?.status == CANCELLED => CANCELLED,
            Closed::Moved => {
                return Err(
                    PaymentError::InvalidState("Only pending orders can be cancelled.").into(),
                );
            }
        },
        PAID => match payments.refund(&row, PAID).await? {
            Some(Refunded::Done) => REFUNDED,
            Some(Refunded::Refused(err)) => return Err(err.into()),
            // Asked, no verified answer: a sweeper finishes it.
            Some(Refunded::Pending(_)) => REFUNDING,
            // A concurrent cancel claimed the same refund first, or a ship won.
            None => match current(&payments, order.id).await?.status.as_str() {
                REFUNDING => REFUNDING,
                REFUNDED => REFUNDED,
                _ => {
                    return Err(PaymentError::InvalidState(
                        "Only pending or paid orders can be cancelled.",
                    )
                    .into());
                }
            },
        },
        // The refund this asks for is under way.
        REFUNDING => REFUNDING,
        _ => {
            return Err(PaymentError::InvalidState(
                "Only pending or paid orders can be cancelled.",
            )
            .into());
        }
    };
    answer(&payments, order, status).await
}

/// The state of the notify route: the payments and the client that verifies notifications.
#[derive(Clone)]
struct NotifyState {
    payments: Payments,
    client: WxPayClient,
}

impl FromRef<NotifyState> for WxPayClient {
    fn from_ref(state: &NotifyState) -> Self {
        state.client.clone()
    }
}

/// `POST /pay/wechat/notify/`: WeChat Pay's notifications. 204 only for a verified,
/// decrypted notification that was applied (or had been); anything else is
/// `{"code": "FAIL", "message"}` with a 4xx/5xx status, so WeChat Pay delivers it again.
pub fn notify_routes(payments: &Payments) -> Router {
    match &payments.pay {
        Some(client) => Router::new()
            .route("/pay/wechat/notify/", post(notify))
            .route("/pay/wechat/notify", post(notify))
            .with_state(NotifyState {
                payments: payments.clone(),
                client: client.clone(),
            }),
        None => {
            let disabled = || async { NotifyFailure(PaymentError::Disabled) };
            Router::new()
                .route("/pay/wechat/notify/", post(disabled))
                .route("/pay/wechat/notify", post(disabled))
        }
    }
}

async fn notify(
    State(state): State<NotifyState>,
    notification: PayNotification,
) -> Result<StatusCode, NotifyFailure> {
    match &notification.resource {
        NotifyResource::Transaction(tx) => {
            let applied = state
                .payments
                .apply_payment(tx)
                .await
                .map_err(NotifyFailure)?;
            tracing::info!(
                id = %notification.id,
                out_trade_no = %tx.out_trade_no,
                ?applied,
                "payment notification"
            );
        }
        NotifyResource::Refund(refund) => {
            state
                .payments
                .apply_refund_notice(refund)
                .await
                .map_err(NotifyFailure)?;
            tracing::info!(
                id = %notification.id,
                out_trade_no = %refund.out_trade_no,
                status = ?refund.refund_status,
                "refund notification"
            );
        }
        _ => {
            tracing::info!(id = %notification.id, event = %notification.event_type, "notification ignored");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The OpenAPI description of the payment routes: the notify route and the order actions
/// `pay`, `ship`, `confirm` and `cancel`. Merge it before the orders viewset's document (the
/// first description of an operation wins), so these replace the viewset's generic ones.
pub fn payment_openapi() -> utoipa::openapi::OpenApi {
    let fail = json!({
        "description": "Not verified, or not applied: WeChat Pay delivers it again.",
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": ["FAIL"]},
                "message": {"type": "string"}
            }
        }}}
    });
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        })
    };
    let order = json!({
        "description": "The order, with its new status.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Orders"}}}
    });
    let id = json!([{
        "name": "id", "in": "path", "required": true,
        "description": "The object's id.", "schema": {"type": "integer", "format": "int64"}
    }]);
    let action = |operation_id: &str, summary: &str, description: &str, ok: Value| {
        json!({"post": {
            "tags": ["orders"],
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "parameters": id.clone(),
            "security": [{"jwtAuth": []}],
            "responses": {
                "200": ok,
                "401": error("Not authenticated."),
                "403": error("Not allowed to do this to the order."),
                "404": error("No such order (or not yours)."),
                "409": error("`invalid_state`: the order's status does not allow this."),
                "502": error("WeChat Pay refused, or its answer failed the signature check (`pay_signature`): nothing changed."),
                "503": error("`payment_unavailable`: payment is not configured; or WeChat Pay is unavailable.")
            }
        }})
    };
    let request_payment = json!({
        "description": "Exactly what `wx.requestPayment` takes.",
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["timeStamp", "nonceStr", "package", "signType", "paySign"],
            "properties": {
                "appId": {"type": "string"},
                "timeStamp": {"type": "string", "description": "Unix seconds."},
                "nonceStr": {"type": "string"},
                "package": {"type": "string", "example": "prepay_id=wx2709..."},
                "signType": {"type": "string", "enum": ["RSA"]},
                "paySign": {"type": "string"}
            }
        }}}
    });
    let doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "payment", "version": "1"},
        "paths": {
            "/mall/orders/{id}/pay/": action(
                "orders_pay",
                "Payment parameters for a pending order (the buyer)",
                "Places the order at WeChat Pay once (asking again signs the same prepay_id \
                 afresh) and answers the parameters of wx.requestPayment. The order becomes \
                 `paid` when WeChat Pay notifies it, not when the mini-program says so.",
                request_payment
            ),
            "/mall/orders/{id}/ship/": action(
                "orders_ship", "paid -> shipped (staff)", "Staff hand a paid order over.",
                order.clone()
            ),
            "/mall/orders/{id}/confirm/": action(
                "orders_confirm", "shipped -> completed (the buyer)",
                "The buyer confirms receipt.", order.clone()
            ),
            "/mall/orders/{id}/cancel/": action(
                "orders_cancel",
                "Cancel: pending -> cancelled, paid -> refunding -> refunded",
                "A pending order is closed at WeChat Pay, then cancelled; a paid one is \
                 refunded in full through WeChat Pay, once however often this is called: it \
                 is first claimed as `refunding` (a concurrent ship then gets 409), then \
                 WeChat Pay is asked, then it becomes `refunded` (the stock returns) or, \
                 when WeChat Pay refuses, `paid` again (an error answer). When WeChat Pay's \
                 answer is lost the order is answered `refunding` and finished by the \
                 server shortly; cancelling a `refunding` order answers it as it is. \
                 Shipped or completed orders: 409 `invalid_state`.",
                order
            ),
            "/pay/wechat/notify/": {
                "post": {
                    "tags": ["payment"],
                    "operationId": "wechat_pay_notify",
                    "summary": "WeChat Pay payment and refund notifications",
                    "description": "Called by WeChat Pay, not by clients; not throttled. The body \
                        is verified (Wechatpay-Signature with WeChat Pay's public key, a timestamp \
                        within 5 minutes, no signature probes) and its resource decrypted with the \
                        APIv3 key before anything is applied; applied once however often \
                        delivered.",
                    "security": [],
                    "requestBody": {"required": true, "content": {"application/json": {
                        "schema": {"type": "object"}}}},
                    "responses": {
                        "204": {"description": "Verified and applied (or applied before)."},
                        "400": fail.clone(),
                        "401": fail.clone(),
                        "404": fail.clone(),
                        "413": fail.clone(),
                        "503": fail
                    }
                }
            }
        }
    });
    serde_json::from_value(doc).unwrap_or_else(|err| {
        tracing::error!(error = %err, "the payment OpenAPI fragment does not parse");
        utoipa::openapi::OpenApi::default()
    })
}
