-- A counter that moves whenever what authenticates a device changes (its
-- keys, thumbprints, authentication type, enabled flag) or a device is
-- deleted, whoever changed it: any hub of the cluster, the CLI. As in
-- sqlite/0011_credentials_version.sql: the registry's credential cache keeps
-- a device's entry past its second while the counter has not moved. A
-- sequence: reading it takes no lock and moving it never waits.
CREATE SEQUENCE credentials_version;

CREATE FUNCTION count_credential_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM nextval('credentials_version');
	RETURN NULL;
END $$;

CREATE TRIGGER devices_credentials_changed AFTER UPDATE OF primary_key, secondary_key, enabled, auth_type,
	primary_thumbprint, secondary_thumbprint ON devices
	FOR EACH ROW WHEN (OLD.primary_key IS DISTINCT FROM NEW.primary_key OR OLD.secondary_key IS DISTINCT FROM NEW.secondary_key
		OR OLD.enabled IS DISTINCT FROM NEW.enabled OR OLD.auth_type IS DISTINCT FROM NEW.auth_type
		OR OLD.primary_thumbprint IS DISTINCT FROM NEW.primary_thumbprint
		OR OLD.secondary_thumbprint IS DISTINCT FROM NEW.secondary_thumbprint)
	EXECUTE FUNCTION count_credential_change();

CREATE TRIGGER devices_deleted_credentials AFTER DELETE ON devices
	FOR EACH STATEMENT EXECUTE FUNCTION count_credential_change();
