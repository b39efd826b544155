#!/bin/sh
# Create one database and one login role per component: Airflow's metadata, MLflow's tracking
# and registry store (its auth tables too), and Feast's SQL registry. Each role owns only its
# database; PUBLIC loses CONNECT, so no component can open another's database.
#
# The postgres image runs this once, on an empty data directory
# (/docker-entrypoint-initdb.d); the integration tests run it unchanged against the machine's
# Postgres with their own names. psql connects with the usual PG* variables.
set -eu

: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is required}"
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is required}"
: "${FEAST_DB_PASSWORD:?FEAST_DB_PASSWORD is required}"

create_database() {
    # Names and passwords travel as psql variables, quoted by format(%I / %L): never spliced
    # into SQL text by the shell.
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
        --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
        -v name="$1" -v password="$2" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'name', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'name') \gexec
SQL
    echo "created database and role $1"
}

create_database "${AIRFLOW_DB_NAME:-airflow}" "$AIRFLOW_DB_PASSWORD"
create_database "${MLFLOW_DB_NAME:-mlflow}" "$MLFLOW_DB_PASSWORD"
create_database "${FEAST_DB_NAME:-feast}" "$FEAST_DB_PASSWORD"
