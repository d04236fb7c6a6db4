-- Telemetry: the device-to-cloud message log and the time series derived from it.
--
-- The message log is the durable record: one row per message, written in the
-- ingest pipeline's group-commit transactions. Readings are not stored one row
-- each (a commit touching thousands of series rewrites thousands of b-tree
-- pages); they are packed per metric into compressed chunks that the hub fills
-- in memory and writes at checkpoints, a few metrics per transaction.
-- telemetry_state.folded_message_id says which messages are in chunks for every
-- metric, metrics.through_msg which ones are for that metric (a checkpoint in
-- progress moves it metric by metric); after a crash the open chunks are rebuilt
-- from the messages after the first, skipping each metric's up to the second.

CREATE TABLE messages (
	-- AUTOINCREMENT: ids only grow, even after the newest rows are deleted, so
	-- "every message after id N" (crash recovery, live stream resume) stays true.
	id               INTEGER PRIMARY KEY AUTOINCREMENT, -- commit order; the live streams' sequence number
	device_id        INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	enqueued_at      INTEGER NOT NULL,               -- Unix ms, when the hub accepted the message
	message_id       TEXT NOT NULL DEFAULT '',
	correlation_id   TEXT NOT NULL DEFAULT '',
	content_type     TEXT NOT NULL DEFAULT '',
	content_encoding TEXT NOT NULL DEFAULT '',
	to_address       TEXT NOT NULL DEFAULT '',
	user_id          TEXT NOT NULL DEFAULT '',
	properties       TEXT,                           -- JSON object of application properties; NULL when none
	auth_method      TEXT NOT NULL,                  -- how the sender authenticated, e.g. sas-primary
	body             BLOB NOT NULL
);
CREATE INDEX messages_device ON messages (device_id, id);

-- AUTOINCREMENT: a metric id is never reused, so the hub's in-memory series can
-- tell that a metric was deleted (with its device) and recreated.
CREATE TABLE metrics (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	device_id  INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,                        -- flattened JSON path, e.g. engine.temp
	last_value REAL,                                 -- as of the last checkpoint; the hub keeps newer ones in memory
	last_ts    INTEGER,
	through_msg INTEGER NOT NULL DEFAULT 0,          -- its readings of messages up to this id are in reading_chunks
	UNIQUE (device_id, name)
);

-- One chunk holds up to about a thousand readings of one metric: timestamps as
-- delta-of-delta varints, values as scaled-decimal deltas (raw float64 when a
-- value is not a short decimal). start_ts/end_ts are the smallest and largest
-- timestamps in it; n/min/max/sum let long-range charts skip decoding.
CREATE TABLE reading_chunks (
	id       INTEGER PRIMARY KEY,
	metric_id INTEGER NOT NULL REFERENCES metrics (id) ON DELETE CASCADE,
	chunk_no INTEGER NOT NULL,                       -- per metric, in fill order
	start_ts INTEGER NOT NULL,
	end_ts   INTEGER NOT NULL,
	n        INTEGER NOT NULL,
	min      REAL NOT NULL,
	max      REAL NOT NULL,
	sum      REAL NOT NULL,
	data     BLOB NOT NULL,
	UNIQUE (metric_id, chunk_no)
);
CREATE INDEX reading_chunks_range ON reading_chunks (metric_id, end_ts);
CREATE INDEX reading_chunks_end ON reading_chunks (end_ts);

CREATE TABLE telemetry_state (
	id                INTEGER PRIMARY KEY CHECK (id = 1),
	folded_message_id INTEGER NOT NULL               -- every message up to this id is in reading_chunks
);
INSERT INTO telemetry_state (id, folded_message_id) VALUES (1, 0);
