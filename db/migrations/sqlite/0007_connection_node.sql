-- The instance (node) that holds a device's live MQTT connection, so that
-- several instances sharing one store route methods, cloud-to-device
-- pushes and takeovers to it; NULL when the device is not connected.
ALTER TABLE devices ADD COLUMN connected_node TEXT;
