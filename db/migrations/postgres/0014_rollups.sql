-- Rollups: each metric's readings summarised per minute and per hour, as in
-- sqlite/0011_rollups.sql (read its comment). Every node adds its own
-- readings to the same rows, in the transaction that moves its
-- metric_progress: a row holds exactly the readings of each node's messages
-- up to that node's through_msg.
CREATE TABLE rollup_minutes (
	metric_id BIGINT NOT NULL REFERENCES metrics (id) ON DELETE CASCADE,
	bucket    BIGINT NOT NULL,                       -- start, Unix ms, a whole minute
	n         BIGINT NOT NULL,
	min       DOUBLE PRECISION NOT NULL,
	max       DOUBLE PRECISION NOT NULL,
	sum       DOUBLE PRECISION NOT NULL,
	PRIMARY KEY (metric_id, bucket)
);

CREATE TABLE rollup_hours (
	metric_id BIGINT NOT NULL REFERENCES metrics (id) ON DELETE CASCADE,
	bucket    BIGINT NOT NULL,                       -- start, Unix ms, a whole hour
	n         BIGINT NOT NULL,
	min       DOUBLE PRECISION NOT NULL,
	max       DOUBLE PRECISION NOT NULL,
	sum       DOUBLE PRECISION NOT NULL,
	PRIMARY KEY (metric_id, bucket)
);
