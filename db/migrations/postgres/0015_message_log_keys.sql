-- The message log without foreign keys. Each key was checked by a query per
-- logged message (PostgreSQL runs a foreign key's check row by row, locking
-- the referenced row each time): a group commit of 600 messages ran 1,200
-- of them, and they cost as much as the rest of the insert (bench/README.md,
-- issue 11). What they guarded is kept another way:
-- - messages.node: a telemetry_nodes row is never deleted, and every node
--   writes under its own row's id;
-- - messages.device_id: a device's messages are deleted with it by the
--   trigger below; and a group commit locks the rows of the devices it logs
--   messages for (FOR KEY SHARE, one statement for the whole commit, in
--   telemetry/postgres; lock_devices below for the devices the writer has
--   cached), so that a device deleted meanwhile waits for that commit and
--   its trigger then deletes those messages too: no message outlives its
--   device.
ALTER TABLE messages DROP CONSTRAINT messages_node_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_device_id_fkey;

-- Runs after the DELETE, as the cascade did; in READ COMMITTED its DELETE
-- sees every commit that the device's row lock waited for.
CREATE FUNCTION delete_device_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM messages WHERE device_id IN (SELECT id FROM gone);
	RETURN NULL;
END $$;
CREATE TRIGGER device_messages_deleted AFTER DELETE ON devices REFERENCING OLD TABLE AS gone
	FOR EACH STATEMENT EXECUTE FUNCTION delete_device_messages();

-- Locks the devices (ids[i], created_at created[i]) a group commit logs
-- messages for, sent with the commit itself, and fails it with SQLSTATE
-- FH001 when one of them was deleted, or deleted and created again, since
-- the writer cached it: the writer then looks its devices up again.
CREATE FUNCTION lock_devices(ids BIGINT[], created BIGINT[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT count(*) FROM (SELECT 1 FROM devices d JOIN unnest(ids, created) AS u(id, created_at)
			ON d.id = u.id AND d.created_at = u.created_at FOR KEY SHARE OF d) locked) <> cardinality(ids) THEN
		RAISE EXCEPTION 'a device of the commit was deleted or created again' USING ERRCODE = 'FH001';
	END IF;
END $$;
