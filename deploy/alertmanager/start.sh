#!/bin/sh
# Starts Alertmanager with its webhook receiver at ALERT_WEBHOOK_URL. Alertmanager reads no
# environment variables, and Debian's 0.25 (the local images) has no `url_file`, so the URL is
# written into a copy of the config. The official image names the binary `alertmanager`,
# Debian `prometheus-alertmanager`. Arguments are passed on (tests run it on other ports).
set -eu
template="${ALERTMANAGER_TEMPLATE:-/etc/alertmanager/alertmanager.yml}"
storage="${ALERTMANAGER_STORAGE:-/alertmanager}"
shipped="http://127.0.0.1:9095/alerts"
config="$storage/alertmanager.yml"
url="${ALERT_WEBHOOK_URL:-$shipped}"
# sed's replacement treats `&`, `|` and `\` specially; a webhook's query string may hold them.
escaped=$(printf '%s' "$url" | sed 's/[&|\\]/\\&/g')
sed "s|url: $shipped\$|url: $escaped|" "$template" >"$config"
grep -qF "url: $url" "$config" || { echo "start.sh: $template has no url: $shipped" >&2; exit 1; }
binary=$(command -v alertmanager || command -v prometheus-alertmanager)
# One instance: no cluster (its gossip port wants a private address a loopback test lacks).
exec "$binary" --config.file="$config" --storage.path="$storage" --cluster.listen-address= "$@"
