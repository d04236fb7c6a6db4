-- Every group commit moves its devices' last activity (telemetry/postgres,
-- TouchDevices). With an index on last_activity_at each such update was a
-- new row version plus an entry in every index of devices (the primary key,
-- device_id, the connected node's); without one it is a heap-only (HOT)
-- update in the row's own page, when the page has room. No query used the
-- index: the fleet's sort by activity orders by COALESCE(last_activity_at,
-- 0) and device_id, and the online rule ORs it with other columns, so both
-- read the table anyway (bench/README.md, "Issue 11: PostgreSQL ingest,
-- second round").
DROP INDEX devices_last_activity;
-- Room in each page for a row's new version, so that the update stays HOT.
ALTER TABLE devices SET (fillfactor = 90);

-- The newest message id each node logged, moved by every group commit (one
-- small row update per commit, in the same round trip). A node's messages
-- after its watermark up to this id are in its memory only until its next
-- checkpoint; a readings query on another instance reads them from the log
-- (telemetry/postgres, Storage.Chunks), and skips at once a node with
-- nothing newer than its watermark. A table of its own rather than a column
-- of telemetry_nodes: the checkpoint moves the watermark in that row, and a
-- group commit waiting for a checkpoint's commit to release the row halved
-- the rate of single messages (bench/README.md). 0 until a node logs again:
-- what it logged before stays unseen by other instances until checkpointed.
CREATE TABLE telemetry_logged (
	node       INTEGER PRIMARY KEY,                  -- telemetry_nodes.id
	message_id BIGINT NOT NULL DEFAULT 0
);
INSERT INTO telemetry_logged (node) SELECT id FROM telemetry_nodes;
