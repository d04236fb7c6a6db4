-- Usernames are unique regardless of letter case: "Admin" and "admin" name one
-- account, and sign-in matches either spelling. Earlier versions allowed both.
-- Where names differ only in case, the oldest account keeps its name and each
-- later one is renamed to its name (cut to 50 characters), "-" and its id, as
-- in "Admin-7": nobody is locked out of the upgrade, passwords and sessions
-- stay, and the audit log records every rename (actor "migration") so that an
-- admin can tell those users their new name.
INSERT INTO audit_log (at, actor, action, target, outcome, detail)
SELECT CAST(strftime('%s', 'now') AS INTEGER) * 1000, 'migration', 'user.rename', u.username, 'ok',
	'renamed to ' || substr(u.username, 1, 50) || '-' || u.id || ': an older user''s name differs only in letter case'
FROM users u
WHERE EXISTS (SELECT 1 FROM users o WHERE o.username = u.username COLLATE NOCASE AND o.id < u.id)
ORDER BY u.id;

UPDATE users SET username = substr(username, 1, 50) || '-' || id
WHERE EXISTS (SELECT 1 FROM users o WHERE o.username = users.username COLLATE NOCASE AND o.id < users.id);

CREATE UNIQUE INDEX users_username_nocase ON users (username COLLATE NOCASE);
