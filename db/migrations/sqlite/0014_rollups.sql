-- Rollups: each metric's readings summarised per minute and per hour, so that
-- long ranges outlive the raw readings (kept for --retention) and chart from a
-- few thousand rows. The hub adds to them at checkpoints, in the transaction
-- that moves metrics.through_msg: a row holds exactly the metric's readings of
-- the messages up to it (package telemetry, rollup.go).
--
-- WITHOUT ROWID: the primary key is the row's only index, and the rows of a
-- metric sit together in bucket order, which is how charts read them.
CREATE TABLE rollup_minutes (
	metric_id INTEGER NOT NULL REFERENCES metrics (id) ON DELETE CASCADE,
	bucket    INTEGER NOT NULL,                      -- start, Unix ms, a whole minute
	n         INTEGER NOT NULL,
	min       REAL NOT NULL,
	max       REAL NOT NULL,
	sum       REAL NOT NULL,
	PRIMARY KEY (metric_id, bucket)
) WITHOUT ROWID;

CREATE TABLE rollup_hours (
	metric_id INTEGER NOT NULL REFERENCES metrics (id) ON DELETE CASCADE,
	bucket    INTEGER NOT NULL,                      -- start, Unix ms, a whole hour
	n         INTEGER NOT NULL,
	min       REAL NOT NULL,
	max       REAL NOT NULL,
	sum       REAL NOT NULL,
	PRIMARY KEY (metric_id, bucket)
) WITHOUT ROWID;
