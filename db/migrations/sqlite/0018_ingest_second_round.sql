-- Nothing: PostgreSQL dropped its unused index on devices.last_activity_at
-- and records the newest message id each node logged
-- (postgres/0018_ingest_second_round.sql); SQLite has one writer and no row
-- versions to save. This file keeps both dialects' migration numbers in step.
SELECT 1;
