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
--   telemetry/postgres), so that a device deleted meanwhile waits for that
--   commit and its trigger then deletes those messages too: no message
--   outlives its device.
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
