-- Usernames are unique regardless of letter case, as sqlite/0005 makes them.
-- A PostgreSQL database gets this migration together with 0001, so it has
-- no users to rename. Usernames are ASCII (db.ValidateUsername), so lower()
-- folds case exactly as SQLite's NOCASE does.
CREATE UNIQUE INDEX users_username_nocase ON users (lower(username));
