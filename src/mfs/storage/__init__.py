"""Storage: connections, the local embedded cluster, migrations, bulk COPY/upsert."""
