-- API tokens may expire: NULL is never (tokens made before this version, and
-- `fieldhub token create` without --expires). An expired token is refused
-- like a revoked one and stays listed.
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;

-- When a user last signed in successfully (Unix ms); NULL until they do.
ALTER TABLE users ADD COLUMN last_login_at INTEGER;
