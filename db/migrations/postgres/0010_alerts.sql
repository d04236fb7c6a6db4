-- Alerting, as in sqlite/0008_alerts.sql: rules, the alerts they raise (open ones and their history),
-- webhook subscriptions and the durable outbox of their deliveries.

CREATE TABLE alert_rules (
	id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name       TEXT NOT NULL,
	severity   TEXT NOT NULL,
	enabled    BOOLEAN NOT NULL,
	scope      TEXT NOT NULL,                -- JSON, the API's form
	condition  TEXT NOT NULL,                -- JSON, the API's form
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

-- No foreign keys to rules or devices: an alert's history outlives both
-- (it is pruned by its own retention); rule and device are named by id.
CREATE TABLE alerts (
	id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	rule_id         BIGINT NOT NULL,
	device_id       TEXT NOT NULL,
	severity        TEXT NOT NULL,
	state           TEXT NOT NULL CHECK (state IN ('active', 'acknowledged', 'cleared')),
	count           BIGINT NOT NULL,
	first_at        BIGINT NOT NULL,
	last_at         BIGINT NOT NULL,
	value           TEXT NOT NULL DEFAULT 'null', -- JSON
	acknowledged_at BIGINT,
	acknowledged_by TEXT NOT NULL DEFAULT '',
	ack_comment     TEXT NOT NULL DEFAULT '',
	cleared_at      BIGINT,
	cleared_by      TEXT NOT NULL DEFAULT '',
	clear_comment   TEXT NOT NULL DEFAULT '',
	clear_reason    TEXT NOT NULL DEFAULT ''
);
-- One open alert per (rule, device).
CREATE UNIQUE INDEX alerts_open ON alerts (rule_id, device_id) WHERE state <> 'cleared';
CREATE INDEX alerts_device ON alerts (device_id, id);
CREATE INDEX alerts_state ON alerts (state, id);
CREATE INDEX alerts_cleared ON alerts (cleared_at) WHERE cleared_at IS NOT NULL;

CREATE TABLE webhooks (
	id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	url             TEXT NOT NULL,
	secret          TEXT NOT NULL,
	events          TEXT NOT NULL,           -- JSON array of event types
	format          TEXT NOT NULL CHECK (format IN ('json', 'slack')),
	enabled         BOOLEAN NOT NULL,
	disabled_reason TEXT NOT NULL DEFAULT '',
	failing_since   BIGINT,                 -- first failure after the last success
	created_at      BIGINT NOT NULL,
	updated_at      BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
	id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	webhook_id       BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
	event_id         TEXT NOT NULL,
	event_type       TEXT NOT NULL,
	alert_id         BIGINT NOT NULL,
	payload          TEXT NOT NULL,          -- the event's JSON; sentAt is set per attempt
	state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'dropped')),
	attempts         BIGINT NOT NULL DEFAULT 0,
	next_at          BIGINT NOT NULL,
	first_failure_at BIGINT,
	last_status      BIGINT NOT NULL DEFAULT 0,
	last_error       TEXT NOT NULL DEFAULT '',
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_hook_due ON webhook_deliveries (webhook_id, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (updated_at) WHERE state <> 'pending';
