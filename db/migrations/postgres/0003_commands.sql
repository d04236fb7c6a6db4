-- Commands: cloud-to-device message queues and device twins, as in
-- sqlite/0003_commands.sql. Deadlines are absolute Unix ms.

CREATE TABLE cloud_messages (
	id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- also the queue order
	device_id          BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	message_id         TEXT NOT NULL,
	correlation_id     TEXT NOT NULL DEFAULT '',
	body               BYTEA NOT NULL,
	properties         TEXT NOT NULL DEFAULT '{}',   -- JSON object of application properties
	state              TEXT NOT NULL CHECK (state IN
		('queued', 'locked', 'completed', 'rejected', 'abandoned', 'expired', 'dead', 'purged')),
	lock_token         TEXT,                         -- set while locked
	lock_expires_at    BIGINT,                       -- set while locked
	expires_at         BIGINT NOT NULL,
	delivery_count     INTEGER NOT NULL DEFAULT 0,
	max_delivery_count INTEGER NOT NULL,
	sender             TEXT NOT NULL DEFAULT '',
	enqueued_at        BIGINT NOT NULL,
	updated_at         BIGINT NOT NULL,
	settled_at         BIGINT
);
CREATE INDEX cloud_messages_device ON cloud_messages (device_id, id);
CREATE INDEX cloud_messages_device_state ON cloud_messages (device_id, state, id);
CREATE UNIQUE INDEX cloud_messages_lock ON cloud_messages (lock_token) WHERE lock_token IS NOT NULL;
CREATE INDEX cloud_messages_waiting_expiry ON cloud_messages (expires_at) WHERE state IN ('queued', 'abandoned');
CREATE INDEX cloud_messages_lock_expiry ON cloud_messages (lock_expires_at) WHERE state = 'locked';
CREATE INDEX cloud_messages_settled ON cloud_messages (settled_at) WHERE settled_at IS NOT NULL;

CREATE TABLE twins (
	device_id        BIGINT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
	desired          TEXT NOT NULL DEFAULT '{}',
	desired_version  BIGINT NOT NULL DEFAULT 1,
	reported         TEXT NOT NULL DEFAULT '{}',
	reported_version BIGINT NOT NULL DEFAULT 1,
	updated_at       BIGINT NOT NULL
);
