#!/bin/sh
# The pgBackRest stanza of this server, created once on an empty volume (archive_command pushes
# WAL from then on). An existing volume: docker compose exec -u postgres db pgbackrest --stanza=mfs stanza-create
set -e
pgbackrest --stanza=mfs --pg1-socket-path=/var/run/postgresql stanza-create
