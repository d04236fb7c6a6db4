-- MQTT: the subscriptions of persistent (clean=false) device sessions. mochi
-- keeps sessions in memory only; the SDKs subscribe once and never again on
-- reconnect, so without this a restart of the hub would silently stop
-- cloud-to-device messages, methods and desired-property updates.
CREATE TABLE mqtt_subscriptions (
	device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	filter    TEXT NOT NULL,
	qos       INTEGER NOT NULL,
	PRIMARY KEY (device_id, filter)
) WITHOUT ROWID;
