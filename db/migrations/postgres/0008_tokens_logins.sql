-- As sqlite/0008_tokens_logins.sql: API tokens may expire (NULL is never;
-- an expired token is refused like a revoked one and stays listed), and
-- when a user last signed in (Unix ms; NULL until they do).
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE users ADD COLUMN last_login_at BIGINT;
