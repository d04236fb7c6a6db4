-- A counter that moves whenever what authenticates a device changes (its
-- keys, thumbprints, authentication type, enabled flag) or a device is
-- deleted, whoever changed it: this hub, the CLI, another process. The
-- registry's credential cache (registry/authenticate.go) keeps a device's
-- entry past its second while the counter has not moved, which costs one
-- read of this row a second for the whole fleet instead of one device row
-- per device and second.
CREATE TABLE credentials_version (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	version INTEGER NOT NULL
);
INSERT INTO credentials_version (id, version) VALUES (1, 0);

CREATE TRIGGER devices_credentials_changed AFTER UPDATE OF primary_key, secondary_key, enabled, auth_type,
	primary_thumbprint, secondary_thumbprint ON devices
	WHEN OLD.primary_key IS NOT NEW.primary_key OR OLD.secondary_key IS NOT NEW.secondary_key
		OR OLD.enabled IS NOT NEW.enabled OR OLD.auth_type IS NOT NEW.auth_type
		OR OLD.primary_thumbprint IS NOT NEW.primary_thumbprint OR OLD.secondary_thumbprint IS NOT NEW.secondary_thumbprint
BEGIN
	UPDATE credentials_version SET version = version + 1 WHERE id = 1;
END;

CREATE TRIGGER devices_deleted_credentials AFTER DELETE ON devices
BEGIN
	UPDATE credentials_version SET version = version + 1 WHERE id = 1;
END;
