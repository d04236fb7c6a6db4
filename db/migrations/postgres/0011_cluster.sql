-- Several instances of the hub on this database (package cluster).
--
-- Each instance holds a lease here and renews it. When one stops renewing,
-- another marks it lost (lost_at) and takes its devices' connections back:
-- the devices it held are disconnected and the cloud-to-device messages it
-- had locked go back to the queue. The row stays until the lost instance's
-- telemetry log is folded into the time series, then it is deleted.
-- Times are Unix ms by the database's clock.
CREATE TABLE cluster_nodes (
	node        TEXT PRIMARY KEY,
	lease_until BIGINT NOT NULL,
	joined_at   BIGINT NOT NULL,
	lost_at     BIGINT
);

-- The instance whose connection locked a cloud-to-device message (NULL
-- when unlocked): its messages in flight are given back when it is lost.
ALTER TABLE cloud_messages ADD COLUMN locked_node TEXT;
CREATE INDEX cloud_messages_locked_node ON cloud_messages (locked_node) WHERE state = 'locked';
