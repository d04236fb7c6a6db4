-- Nothing: the SQLite store moved its message log's device index out of the
-- commit (sqlite/0017_message_index.sql); PostgreSQL keeps its index on
-- messages. This file keeps both dialects' migration numbers in step.
SELECT 1;
