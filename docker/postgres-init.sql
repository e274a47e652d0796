-- Run once by the postgres image on an empty data directory.
-- pg_stat_statements is preloaded by the server's command line (docker-compose.yml).
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
