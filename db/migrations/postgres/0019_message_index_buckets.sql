-- Nothing: the SQLite store's message_index is keyed by id bucket first
-- (sqlite/0019_message_index_buckets.sql); PostgreSQL has no message_index
-- and keeps its device index on messages. This file keeps both dialects'
-- migration numbers in step.
SELECT 1;
