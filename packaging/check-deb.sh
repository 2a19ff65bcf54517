#!/usr/bin/env bash
# Build the .deb, list it, install it, verify the unit and the installed config.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
cargo deb --quiet
deb=$(ls -t target/debian/auditrelay_*.deb | head -n 1)
echo "== contents of $deb"
dpkg-deb -c "$deb"
sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
$sudo_cmd dpkg -i "$deb"
echo "== systemd-analyze verify"
systemd-analyze verify /usr/lib/systemd/system/auditrelay.service
echo "== systemd-analyze security"
systemd-analyze security --offline=true /usr/lib/systemd/system/auditrelay.service | tail -n 1
echo "== auditrelay check on the installed config"
/usr/bin/auditrelay check --config /etc/auditrelay/auditrelay.toml
id auditrelay
