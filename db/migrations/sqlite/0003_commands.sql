-- Commands: cloud-to-device message queues and device twins.
-- Deadlines (expiry, lock expiry) are stored as absolute Unix ms, so a restart
-- resumes every timer where it stood instead of starting it over.

CREATE TABLE cloud_messages (
	id                 INTEGER PRIMARY KEY,          -- also the queue order
	device_id          INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	message_id         TEXT NOT NULL,
	correlation_id     TEXT NOT NULL DEFAULT '',
	body               BLOB NOT NULL,
	properties         TEXT NOT NULL DEFAULT '{}',   -- JSON object of application properties
	state              TEXT NOT NULL CHECK (state IN
		('queued', 'locked', 'completed', 'rejected', 'abandoned', 'expired', 'dead', 'purged')),
	lock_token         TEXT,                         -- set while locked
	lock_expires_at    INTEGER,                      -- set while locked
	expires_at         INTEGER NOT NULL,
	delivery_count     INTEGER NOT NULL DEFAULT 0,
	max_delivery_count INTEGER NOT NULL,
	sender             TEXT NOT NULL DEFAULT '',     -- audit actor of whoever queued it
	enqueued_at        INTEGER NOT NULL,
	updated_at         INTEGER NOT NULL,
	settled_at         INTEGER                       -- when it reached a final state
);
CREATE INDEX cloud_messages_device ON cloud_messages (device_id, id);
-- A device's live messages without walking its settled history.
CREATE INDEX cloud_messages_device_state ON cloud_messages (device_id, state, id);
CREATE UNIQUE INDEX cloud_messages_lock ON cloud_messages (lock_token) WHERE lock_token IS NOT NULL;
-- The sweeper looks for the next deadline among waiting and locked messages.
CREATE INDEX cloud_messages_waiting_expiry ON cloud_messages (expires_at) WHERE state IN ('queued', 'abandoned');
CREATE INDEX cloud_messages_lock_expiry ON cloud_messages (lock_expires_at) WHERE state = 'locked';
CREATE INDEX cloud_messages_settled ON cloud_messages (settled_at) WHERE settled_at IS NOT NULL;

CREATE TABLE twins (
	device_id        INTEGER PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
	desired          TEXT NOT NULL DEFAULT '{}',
	desired_version  INTEGER NOT NULL DEFAULT 1,
	reported         TEXT NOT NULL DEFAULT '{}',
	reported_version INTEGER NOT NULL DEFAULT 1,
	updated_at       INTEGER NOT NULL
);
