-- Several instances on one database exist only on PostgreSQL (package
-- cluster, postgres/0011_cluster.sql): a SQLite store has one writer. This
-- version is kept so that both dialects number the same change the same.
SELECT 1;
