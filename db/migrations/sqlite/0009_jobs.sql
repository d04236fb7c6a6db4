-- Jobs: a direct method, a desired-twin patch or a cloud-to-device message
-- run on every device a fleet query selects (package jobs).
CREATE TABLE jobs (
	id              INTEGER PRIMARY KEY,
	job_id          TEXT NOT NULL UNIQUE,            -- the id operators and the API use
	type            TEXT NOT NULL CHECK (type IN ('method', 'twin', 'c2d')),
	query           TEXT NOT NULL,                   -- the condition, as the operator wrote it
	payload         TEXT NOT NULL,                   -- JSON: the method call, the patch or the message
	actor           TEXT NOT NULL,                   -- who created it
	status          TEXT NOT NULL CHECK (status IN ('scheduled', 'running', 'completed', 'cancelled', 'failed')),
	max_concurrency INTEGER NOT NULL,
	device_timeout  INTEGER NOT NULL,                -- milliseconds per device
	created_at      INTEGER NOT NULL,
	start_at        INTEGER NOT NULL,                -- when it is to start
	started_at      INTEGER,
	finished_at     INTEGER,
	total           INTEGER NOT NULL DEFAULT 0,      -- devices selected when it started
	succeeded       INTEGER NOT NULL DEFAULT 0,
	failed          INTEGER NOT NULL DEFAULT 0,
	cancelled       INTEGER NOT NULL DEFAULT 0,
	error           TEXT NOT NULL DEFAULT ''         -- why the job as a whole failed
);
CREATE INDEX jobs_status ON jobs (status, start_at);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- One row per device a job selected. device_id is the text id, not a
-- reference: a device deleted during the job keeps its outcome.
CREATE TABLE job_devices (
	job         INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	device_id   TEXT NOT NULL,
	status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
	started_at  INTEGER,
	finished_at INTEGER,
	result      TEXT NOT NULL DEFAULT '',             -- JSON: the method's status and payload, the twin version, the message id
	error       TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (job, device_id)
) WITHOUT ROWID;
CREATE INDEX job_devices_status ON job_devices (job, status, device_id);
