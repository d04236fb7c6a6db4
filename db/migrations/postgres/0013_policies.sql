-- Shared access policies, as in sqlite/0011_policies.sql.
CREATE TABLE shared_access_policies (
	id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE,
	primary_key   TEXT NOT NULL,
	secondary_key TEXT NOT NULL,
	rights        TEXT NOT NULL,
	created_at    BIGINT NOT NULL,
	updated_at    BIGINT NOT NULL
);
