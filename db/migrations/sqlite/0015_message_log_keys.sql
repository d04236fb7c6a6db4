-- PostgreSQL's message log lost its foreign keys (postgres/0015_message_log_keys.sql):
-- there each was a query per logged message. SQLite checks a key with an
-- index lookup in the same process, and keeps them. This version is kept so
-- that both dialects number the same change the same.
SELECT 1;
