#!/bin/sh
# Runs one build step trusting ca.crt of this directory when a build machine put it there
# (deploy/local/build-images.sh copies the host's bundle where HTTPS goes through a proxy of
# its own). Dockerfiles bind-mount this directory for the steps that download, so the bundle
# is in no layer; without ca.crt (a user's machine) the command runs unchanged.
ca="$(dirname "$0")/ca.crt"
if [ -f "$ca" ]; then
    export PIP_CERT="$ca" SSL_CERT_FILE="$ca" REQUESTS_CA_BUNDLE="$ca"
fi
exec "$@"
