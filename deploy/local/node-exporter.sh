#!/bin/sh
# node-exporter 1.5 accepts one --collector.textfile.directory; newer ones (the official
# image) accept it repeated. Every given directory's *.prom files are linked into one
# directory, refreshed every few seconds, and node-exporter reads that one.
set -eu
merged=$(mktemp -d)
dirs=""
args=""
for arg in "$@"; do
    case "$arg" in
        --collector.textfile.directory=*) dirs="$dirs ${arg#*=}" ;;
        *) args="$args $arg" ;;
    esac
done
link_textfiles() {
    while :; do
        find "$merged" -maxdepth 1 -type l ! -exec test -e {} \; -delete
        for dir in $dirs; do
            for file in "$dir"/*.prom; do
                [ -e "$file" ] && ln -sf "$file" "$merged/$(basename "$dir")-$(basename "$file")"
            done
        done
        sleep 5
    done
}
if [ -n "$dirs" ]; then
    link_textfiles &
    # shellcheck disable=SC2086
    exec /usr/bin/prometheus-node-exporter $args --collector.textfile.directory="$merged"
fi
# shellcheck disable=SC2086
exec /usr/bin/prometheus-node-exporter $args
