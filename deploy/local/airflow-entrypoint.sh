#!/bin/bash
# The official Airflow image's /entrypoint, as far as compose uses it: a shell or Python
# command runs as given, anything else is an `airflow` subcommand.
set -euo pipefail
if [ $# -eq 0 ]; then
    exec airflow --help
fi
case "$1" in
    bash | sh | python | python3) exec "$@" ;;
    airflow) shift ;;
esac
exec airflow "$@"
