-- Foundation: device registry, operators, sessions, API tokens, audit log.
-- Times are Unix milliseconds (INTEGER): compact, and comparisons are integer compares.

CREATE TABLE devices (
	id               INTEGER PRIMARY KEY,          -- internal id, used by every other table
	device_id        TEXT NOT NULL UNIQUE,          -- the id devices and operators use
	name             TEXT NOT NULL DEFAULT '',
	tags             TEXT NOT NULL DEFAULT '{}',    -- JSON object of string values
	primary_key      TEXT NOT NULL,
	secondary_key    TEXT NOT NULL,
	enabled          INTEGER NOT NULL DEFAULT 1,
	connected        INTEGER NOT NULL DEFAULT 0,    -- a live MQTT connection
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL,
	last_activity_at INTEGER,
	disconnected_at  INTEGER                        -- when its last live connection closed
);
CREATE INDEX devices_last_activity ON devices (last_activity_at);

CREATE TABLE users (
	id            INTEGER PRIMARY KEY,
	username      TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
	created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
	token_hash BLOB PRIMARY KEY,                    -- sha256 of the cookie value; the value itself is never stored
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	csrf_token TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
	id           INTEGER PRIMARY KEY,
	name         TEXT NOT NULL DEFAULT '',
	role         TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
	token_hash   BLOB NOT NULL UNIQUE,
	prefix       TEXT NOT NULL,                     -- first characters, to recognise a token in lists
	created_at   INTEGER NOT NULL,
	last_used_at INTEGER,
	revoked_at   INTEGER
);

CREATE TABLE audit_log (
	id      INTEGER PRIMARY KEY,
	at      INTEGER NOT NULL,
	actor   TEXT NOT NULL,                          -- "user:alice", "token:ci", "cli", "device:dev1"
	action  TEXT NOT NULL,                          -- "device.create", "c2d.send", ...
	target  TEXT NOT NULL DEFAULT '',
	outcome TEXT NOT NULL DEFAULT 'ok',
	detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_target ON audit_log (target, at);

-- Small hub-wide settings, e.g. the host name devices dial (so the CLI can print
-- connection strings that match the running server).
CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
