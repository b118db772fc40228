-- WeChat Pay and the order lifecycle (issue 18). Statuses: pending, paid, shipped, completed,
-- cancelled, refunded.
-- out_trade_no: the merchant's order number at WeChat Pay (unique per merchant).
-- sweeping_until: a sweeper's lease on an unpaid order (unix seconds), so that exactly one
-- instance closes it at WeChat Pay and cancels it.
ALTER TABLE orders ADD COLUMN out_trade_no VARCHAR(32);
ALTER TABLE orders ADD COLUMN prepay_id VARCHAR(64);
ALTER TABLE orders ADD COLUMN paid_at BIGINT;
ALTER TABLE orders ADD COLUMN transaction_id VARCHAR(64);
ALTER TABLE orders ADD COLUMN refund_id VARCHAR(64);
ALTER TABLE orders ADD COLUMN refund_status VARCHAR(16);
ALTER TABLE orders ADD COLUMN sweeping_until BIGINT;
CREATE UNIQUE INDEX orders_out_trade_no ON orders(out_trade_no);
CREATE INDEX orders_status_created ON orders(status, created_at);
