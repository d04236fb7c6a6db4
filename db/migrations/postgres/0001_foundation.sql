-- Foundation: device registry, operators, sessions, API tokens, audit log.
-- The same tables as sqlite/0001_foundation.sql: times are Unix
-- milliseconds (BIGINT) and flags 0 or 1 (INTEGER), as there, so that the
-- records' row scanners and the one online rule's SQL (package db) serve
-- both stores.

CREATE TABLE devices (
	id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- internal id, used by every other table
	device_id        TEXT NOT NULL UNIQUE,          -- the id devices and operators use
	name             TEXT NOT NULL DEFAULT '',
	tags             TEXT NOT NULL DEFAULT '{}',    -- JSON object of string values
	primary_key      TEXT NOT NULL,
	secondary_key    TEXT NOT NULL,
	enabled          INTEGER NOT NULL DEFAULT 1,
	connected        INTEGER NOT NULL DEFAULT 0,    -- a live MQTT connection
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL,
	last_activity_at BIGINT,
	disconnected_at  BIGINT                         -- when its last live connection closed
);
CREATE INDEX devices_last_activity ON devices (last_activity_at);

CREATE TABLE users (
	id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	username      TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
	created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
	token_hash BYTEA PRIMARY KEY,                   -- sha256 of the cookie value; the value itself is never stored
	user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	csrf_token TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE api_tokens (
	id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name         TEXT NOT NULL DEFAULT '',
	role         TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
	token_hash   BYTEA NOT NULL UNIQUE,
	prefix       TEXT NOT NULL,                     -- first characters, to recognise a token in lists
	created_at   BIGINT NOT NULL,
	last_used_at BIGINT,
	revoked_at   BIGINT
);

CREATE TABLE audit_log (
	id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at      BIGINT NOT NULL,
	actor   TEXT NOT NULL,                          -- "user:alice", "token:ci", "cli", "device:dev1"
	action  TEXT NOT NULL,                          -- "device.create", "c2d.send", ...
	target  TEXT NOT NULL DEFAULT '',
	outcome TEXT NOT NULL DEFAULT 'ok',
	detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_target ON audit_log (target, at);

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
