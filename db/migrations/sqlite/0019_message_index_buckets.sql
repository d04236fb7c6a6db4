-- message_index keyed by bucket first: (id >> bits, device_id, id). Keyed
-- (device_id, id), an index step of ~13,000 messages from ~800 devices
-- dirtied one page per device, ~2,250 WAL frames and 250 ms on a loaded disk,
-- and five steps in ten seconds made the half-rate ack tail (bench/README.md,
-- issue 10, seventh round). Bucketed, a step's entries land in the newest
-- bucket or two, whose pages it rewrites: ~150 frames. bits is kept in
-- message_index_state so that every reader and writer computes the bucket of
-- an id the same way; changing it needs a migration that rebuilds the index.
CREATE TABLE message_index_rebuilt (
	bucket    INTEGER NOT NULL, -- id >> message_index_state.bits
	device_id INTEGER NOT NULL,
	id        INTEGER NOT NULL,
	PRIMARY KEY (bucket, device_id, id)
) WITHOUT ROWID;
INSERT INTO message_index_rebuilt (bucket, device_id, id)
	SELECT id >> 16, device_id, id FROM message_index ORDER BY id >> 16, device_id, id;
DROP TABLE message_index;
ALTER TABLE message_index_rebuilt RENAME TO message_index;

-- Which buckets hold a device's entries, so that a device's listing seeks
-- only those instead of every bucket of the log (a rare device in a long log).
-- The index step adds its new pairs (INSERT OR IGNORE): pages change only
-- when a device first appears in a bucket.
CREATE TABLE message_index_buckets (
	device_id INTEGER NOT NULL,
	bucket    INTEGER NOT NULL,
	PRIMARY KEY (device_id, bucket)
) WITHOUT ROWID;
INSERT INTO message_index_buckets (device_id, bucket)
	SELECT DISTINCT device_id, bucket FROM message_index ORDER BY device_id, bucket;

-- bits: an id's bucket is id >> bits (65,536 ids a bucket).
ALTER TABLE message_index_state ADD COLUMN bits INTEGER NOT NULL DEFAULT 16 CHECK (bits BETWEEN 0 AND 62);
