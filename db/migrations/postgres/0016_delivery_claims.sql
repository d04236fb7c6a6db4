-- Claims on webhook deliveries: the instance that sends a delivery claims it
-- first, until claimed_until (Unix ms), so that instances sharing the
-- database send each delivery once. A claim that runs out (its instance
-- died) leaves the delivery to the next instance that looks. NULL: not
-- claimed.
ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN claimed_until BIGINT;
