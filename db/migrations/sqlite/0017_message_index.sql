-- The message log without its (device_id, id) index. With a device in every
-- group commit that index dirtied one page per device per commit, about nine
-- tenths of what a commit wrote (bench/README.md, issue 10, perf3). A device's
-- messages are now found through message_index, which the hub's writer fills
-- from the log's tail in steps every second (package telemetry/sqlite,
-- index.go): one page per device per step instead of per commit. Readers list
-- message_index up to message_index_state.through and scan the log's
-- unindexed tail (ids above it) by rowid range.
--
-- messages is rebuilt (SQLite's table-rebuild procedure) to drop its foreign
-- key to devices: without an index on device_id, every device delete would
-- scan the whole log to cascade. Deleting a device deletes its messages
-- through message_index and the tail (db.DB.DeleteDevice). Nothing refers to
-- messages, so foreign keys can stay on while it is dropped.
CREATE TABLE messages_rebuilt (
	-- AUTOINCREMENT: ids only grow, even after the newest rows are deleted, so
	-- "every message after id N" (crash recovery, live stream resume) stays true.
	id               INTEGER PRIMARY KEY AUTOINCREMENT, -- commit order; the live streams' sequence number
	device_id        INTEGER NOT NULL,               -- devices.id; deleted with it by db.DB.DeleteDevice
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
INSERT INTO messages_rebuilt (id, device_id, enqueued_at, message_id, correlation_id, content_type,
	content_encoding, to_address, user_id, properties, auth_method, body)
	SELECT id, device_id, enqueued_at, message_id, correlation_id, content_type,
	content_encoding, to_address, user_id, properties, auth_method, body FROM messages ORDER BY id;
-- Keep the id sequence where it was (retention may have deleted the newest
-- ids' neighbours, never the sequence): the rename carries this row along.
DELETE FROM sqlite_sequence WHERE name = 'messages_rebuilt';
INSERT INTO sqlite_sequence (name, seq) SELECT 'messages_rebuilt', seq FROM sqlite_sequence WHERE name = 'messages';
DROP TABLE messages;
ALTER TABLE messages_rebuilt RENAME TO messages;

-- A device's messages in id order, up to message_index_state.through.
-- WITHOUT ROWID: the key is the row, and a device's entries sit together.
CREATE TABLE message_index (
	device_id INTEGER NOT NULL,
	id        INTEGER NOT NULL,
	PRIMARY KEY (device_id, id)
) WITHOUT ROWID;
INSERT INTO message_index (device_id, id) SELECT device_id, id FROM messages ORDER BY device_id, id;

-- through: every message with an id up to it is in message_index.
CREATE TABLE message_index_state (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	through INTEGER NOT NULL
);
INSERT INTO message_index_state (id, through) SELECT 1, COALESCE(MAX(id), 0) FROM messages;
