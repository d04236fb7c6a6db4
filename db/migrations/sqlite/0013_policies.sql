-- Shared access policies, as on Azure IoT Hub: named keys that back-end
-- apps sign service SAS tokens with (skn=<name>), each with the rights it
-- grants (package policy; the service REST API in handlers/service_*.go).
CREATE TABLE shared_access_policies (
	id            INTEGER PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE,
	primary_key   TEXT NOT NULL,                -- base64, 32 random bytes
	secondary_key TEXT NOT NULL,
	rights        TEXT NOT NULL,                -- comma-separated, canonical order (db.Rights.String)
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
);
