#!/usr/bin/env bash
# Build the Splunk add-on: packaging/splunk/TA-auditrelay/ → target/splunk/TA-auditrelay-<version>.tgz
# (version from default/app.conf). Install it on search heads (and on
# heavy forwarders / indexers that parse auditrelay's file output).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../../target/splunk}"
version=$(sed -n 's/^version *= *//p' "$here/TA-auditrelay/default/app.conf" | head -n 1)
mkdir -p "$out"
tgz="$out/TA-auditrelay-$version.tgz"
# Reproducible: fixed owner, mode and mtime, sorted names, no local/ files.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2024-01-01 00:00Z' \
    --mode='u+rwX,go+rX,go-w' --exclude='local' --exclude='*.pyc' --exclude='__pycache__' \
    -C "$here" -czf "$tgz" TA-auditrelay
echo "$tgz"
