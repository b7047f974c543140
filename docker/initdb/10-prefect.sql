-- The Prefect server keeps its state in its own database on the same TimescaleDB server;
-- its migrations need trigram indexes (pg_trgm, from contrib). Runs once, on an empty volume.
CREATE DATABASE prefect;
\connect prefect
CREATE EXTENSION IF NOT EXISTS pg_trgm;
