-- Refunds are claimed before WeChat Pay is asked (issue 23). A full refund moves the order
-- `paid -> refunding` (or, for a payment that arrived after cancelling, `cancelled ->
-- refunding`) in one conditional update, then calls WeChat Pay, then records `refunded` or
-- returns to the state it came from.
-- refund_from: the state a definite refusal returns the order to (paid or cancelled); it also
-- says whether recording the refund returns the stock (only from paid).
-- refund_until: the claim's lease (unix seconds); past it, any instance's sweeper asks WeChat
-- Pay about the refund and finishes it.
ALTER TABLE orders ADD COLUMN refund_from VARCHAR(16);
ALTER TABLE orders ADD COLUMN refund_until BIGINT;
CREATE INDEX orders_status_refund_until ON orders(status, refund_until);
