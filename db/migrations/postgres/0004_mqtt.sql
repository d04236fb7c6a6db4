-- MQTT: the subscriptions of persistent (clean=false) device sessions, as in
-- sqlite/0004_mqtt.sql.
CREATE TABLE mqtt_subscriptions (
	device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	filter    TEXT NOT NULL,
	qos       SMALLINT NOT NULL,
	PRIMARY KEY (device_id, filter)
);
