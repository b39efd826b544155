#!/bin/bash
# The official postgres image's entry point, as far as docker-compose.yaml uses it: on an
# empty PGDATA, initdb with POSTGRES_USER/POSTGRES_PASSWORD and POSTGRES_INITDB_ARGS, run
# /docker-entrypoint-initdb.d/* against a socket-only server, then serve with password logins
# (scram-sha-256) from every address.
set -euo pipefail
PGDATA=${PGDATA:-/var/lib/postgresql/data}
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec runuser -u postgres -- "$0" "$@"
fi
user=${POSTGRES_USER:-postgres}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
    pwfile=$(mktemp)
    printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
    # shellcheck disable=SC2086
    initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-} >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" \
        -w start >/dev/null
    export PGHOST=/var/run/postgresql PGUSER=$user PGPASSWORD=$POSTGRES_PASSWORD
    db=${POSTGRES_DB:-$user}
    if [ "$db" != postgres ]; then
        psql -v ON_ERROR_STOP=1 --dbname postgres -c "CREATE DATABASE \"$db\""
    fi
    for file in /docker-entrypoint-initdb.d/*; do
        case "$file" in
            *.sh) if [ -x "$file" ]; then "$file"; else . "$file"; fi ;;
            *.sql) psql -v ON_ERROR_STOP=1 --dbname "$db" -f "$file" ;;
        esac
    done
    unset PGHOST PGUSER PGPASSWORD
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "$@"
