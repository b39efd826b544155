#!/bin/sh
# Start the MLflow tracking server with authentication on, or do not start.
#
# Run by the `mlflow` service of docker-compose.yaml and, unchanged, by the integration tests
# (tests/integration/), which start it on a free port against the machine's Postgres.
# MLflow's basic-auth app reads its settings from an INI file; the file is written here from
# the environment so the database password never sits in a file of this repository.
#
# Required: MLFLOW_BACKEND_STORE_URI (SQLAlchemy URL; the auth tables live in the same
# database, under their own alembic version table), MLFLOW_ARTIFACTS_DESTINATION,
# MLFLOW_ALLOWED_HOSTS (Host headers accepted, comma-separated), MLFLOW_AUTH_ADMIN_PASSWORD
# (the admin user is created with it on first start), MLFLOW_FLASK_SERVER_SECRET_KEY (CSRF).
# Optional: MLFLOW_AUTH_ADMIN_USERNAME (admin), MLFLOW_HOST (0.0.0.0), MLFLOW_PORT (5000),
# MLFLOW_WORKERS (2), MLFLOW_AUTH_CONFIG_PATH (where the INI is written).
set -eu

: "${MLFLOW_BACKEND_STORE_URI:?MLFLOW_BACKEND_STORE_URI is required}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?MLFLOW_ARTIFACTS_DESTINATION is required}"
: "${MLFLOW_ALLOWED_HOSTS:?MLFLOW_ALLOWED_HOSTS is required}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?MLFLOW_AUTH_ADMIN_PASSWORD is required}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?MLFLOW_FLASK_SERVER_SECRET_KEY is required}"

export MLFLOW_AUTH_ADMIN_USERNAME="${MLFLOW_AUTH_ADMIN_USERNAME:-admin}"
# MLflow's job runner (a pool of huey consumers for GenAI scorers and prompt optimization) has
# nothing to do for a tabular registry; it stays off unless asked for.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
export MLFLOW_AUTH_CONFIG_PATH="${MLFLOW_AUTH_CONFIG_PATH:-${TMPDIR:-/tmp}/mlflow-basic-auth.ini}"

umask 077
# Users other than the admin get nothing unless granted (NO_PERMISSIONS).
cat >"$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = ${MLFLOW_BACKEND_STORE_URI}
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
# Each request's password check is a PBKDF2 hash (hundreds of ms on a busy core); a checked
# credential is trusted for 60 s per worker. A changed or deleted password takes effect on
# the other workers within that window.
auth_cache_ttl_seconds = 60
INI

exec mlflow server \
    --app-name basic-auth \
    --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
    --serve-artifacts \
    --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
    --default-artifact-root mlflow-artifacts:/ \
    --allowed-hosts "$MLFLOW_ALLOWED_HOSTS" \
    --host "${MLFLOW_HOST:-0.0.0.0}" \
    --port "${MLFLOW_PORT:-5000}" \
    --workers "${MLFLOW_WORKERS:-2}"
