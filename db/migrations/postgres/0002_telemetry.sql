-- Telemetry: the device-to-cloud message log and the time series derived
-- from it, in the layout of sqlite/0002_telemetry.sql (read its comment):
-- a durable log, readings packed per metric into compressed chunks written
-- at checkpoints, and a watermark saying which messages are in chunks.
--
-- Unlike SQLite's, these tables are ready for several hubs writing into one
-- database. The engine (package telemetry) owns its message ids, chunk
-- numbers and watermark; here each is scoped to a node (a hub instance):
-- every message records the node that logged it, each node has its own
-- watermark and its own progress per metric, and each node numbers its
-- chunks in a range of its own. A node replays only its own messages after
-- its own watermark. Queries read every node's chunks and messages.

-- One row per node that ever wrote telemetry: its watermark, and the base of
-- its chunk numbers, (id - 1) * 2^32, so that the first node numbers chunks
-- as SQLite does and no two nodes ever pick the same number.
CREATE TABLE telemetry_nodes (
	id                INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	node              TEXT NOT NULL UNIQUE,
	folded_message_id BIGINT NOT NULL DEFAULT 0      -- every message of this node up to this id is in reading_chunks
);

-- Message ids come from this sequence in blocks of 1024: a node takes a
-- block with one nextval and numbers its messages from it, so that logging a
-- group commit needs no round trip for its ids. A sequence only grows, even
-- after the newest rows are deleted, so "every message after id N" (crash
-- recovery, live stream resume) stays true; each node's ids grow in its
-- commit order (one writer per node).
CREATE SEQUENCE message_ids INCREMENT BY 1024;

CREATE TABLE messages (
	id               BIGINT PRIMARY KEY,             -- from message_ids
	node             INTEGER NOT NULL REFERENCES telemetry_nodes (id),
	device_id        BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	enqueued_at      BIGINT NOT NULL,               -- Unix ms, when the hub accepted the message
	message_id       TEXT NOT NULL DEFAULT '',
	correlation_id   TEXT NOT NULL DEFAULT '',
	content_type     TEXT NOT NULL DEFAULT '',
	content_encoding TEXT NOT NULL DEFAULT '',
	to_address       TEXT NOT NULL DEFAULT '',
	user_id          TEXT NOT NULL DEFAULT '',
	properties       TEXT,                           -- JSON object of application properties; NULL when none
	auth_method      TEXT NOT NULL,
	body             BYTEA NOT NULL
);
CREATE INDEX messages_device ON messages (device_id, id);
-- No index on (node, id): a node's recovery and pruning scan the primary key
-- from its watermark or from the oldest message, and skip other nodes' rows,
-- which are few there; one index less on every message logged.

CREATE TABLE metrics (
	id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- never reused
	device_id  BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,                        -- flattened JSON path, e.g. engine.temp
	last_value DOUBLE PRECISION,                     -- as of the newest checkpoint of any node
	last_ts    BIGINT,
	UNIQUE (device_id, name)
);

-- Moved by every statement that deletes metrics (with their device), so that
-- a writer can tell whether the metrics it knows to exist still do without
-- asking for each (telemetry/postgres, writeMetric).
CREATE SEQUENCE metric_deletions;
CREATE FUNCTION count_metric_deletions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM nextval('metric_deletions');
	RETURN NULL;
END $$;
CREATE TRIGGER metrics_deleted AFTER DELETE ON metrics FOR EACH STATEMENT EXECUTE FUNCTION count_metric_deletions();

-- A node's progress with a metric: its stored chunks hold the node's
-- readings of the metric from its messages up to through_msg.
CREATE TABLE metric_progress (
	metric_id   BIGINT NOT NULL REFERENCES metrics (id) ON DELETE CASCADE,
	node        INTEGER NOT NULL REFERENCES telemetry_nodes (id),
	through_msg BIGINT NOT NULL,
	PRIMARY KEY (metric_id, node)
);

-- Chunks as in SQLite (timestamps as delta-of-delta varints, values as
-- scaled-decimal deltas); chunk_no is per metric, from the writing node's
-- range.
CREATE TABLE reading_chunks (
	metric_id BIGINT NOT NULL REFERENCES metrics (id) ON DELETE CASCADE,
	chunk_no  BIGINT NOT NULL,
	node      INTEGER NOT NULL REFERENCES telemetry_nodes (id),
	start_ts  BIGINT NOT NULL,
	end_ts    BIGINT NOT NULL,
	n         INTEGER NOT NULL,
	min       DOUBLE PRECISION NOT NULL,
	max       DOUBLE PRECISION NOT NULL,
	sum       DOUBLE PRECISION NOT NULL,
	data      BYTEA NOT NULL,
	PRIMARY KEY (metric_id, chunk_no)
);
CREATE INDEX reading_chunks_range ON reading_chunks (metric_id, end_ts);
CREATE INDEX reading_chunks_end ON reading_chunks (end_ts);
-- Chunks are compressed already: PostgreSQL's own compression would only
-- cost CPU.
ALTER TABLE reading_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
