-- Claims on webhook deliveries, as in postgres/0016_delivery_claims.sql:
-- the instance that sends a delivery claims it first, until claimed_until
-- (Unix ms). A SQLite store has one hub, which claims as ''; the columns
-- keep both stores one behaviour (db/storetest).
ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN claimed_until INTEGER;
