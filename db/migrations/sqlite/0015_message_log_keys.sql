-- PostgreSQL's message log lost its foreign keys (postgres/0015_message_log_keys.sql):
-- there each was a query per logged message. SQLite's log loses its key to
-- devices later, with its device index (0017_message_index.sql). This version
-- is kept so that both dialects number the same change the same.
SELECT 1;
