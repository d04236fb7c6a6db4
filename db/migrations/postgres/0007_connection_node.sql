-- The instance (node) holding a device's live MQTT connection, as in
-- sqlite/0007_connection_node.sql; NULL when the device is not connected.
ALTER TABLE devices ADD COLUMN connected_node TEXT;
-- The instance's connections, reset at its start.
CREATE INDEX devices_connected_node ON devices (connected_node) WHERE connected_node IS NOT NULL;
