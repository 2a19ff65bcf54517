#!/usr/bin/env bash
# Build the .deb, list it, install it, verify the unit, the installed config,
# the man pages and the shell completions.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
bash packaging/check-docs.sh   # man pages and completions into target/assets/
cargo deb --quiet
deb=$(ls -t target/debian/auditrelay_*.deb | head -n 1)
echo "== contents of $deb"
dpkg-deb -c "$deb"
dpkg-deb -c "$deb" | awk '$6 == "./etc/auditrelay/auditrelay.toml" {print $1}' | grep -qx -- '-rw-r-----' ||
  { echo "the packaged config is not 0640"; exit 1; }
sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
$sudo_cmd dpkg -i "$deb"
echo "== systemd-analyze verify"
systemd-analyze verify /usr/lib/systemd/system/auditrelay.service
echo "== systemd-analyze security"
systemd-analyze security --offline=true /usr/lib/systemd/system/auditrelay.service | tail -n 1
echo "== the installed config: 0640 root:auditrelay (it can hold secrets)"
id auditrelay
owner=$(stat -c '%U:%G %a' /etc/auditrelay/auditrelay.toml)
[ "$owner" = "root:auditrelay 640" ] || { echo "/etc/auditrelay/auditrelay.toml is $owner, not root:auditrelay 640"; exit 1; }
echo "== auditrelay check on the installed config"
# Readable by root and the service's group only.
$sudo_cmd /usr/bin/auditrelay check --config /etc/auditrelay/auditrelay.toml
echo "== man page and completions"
for f in /usr/share/man/man1/auditrelay.1.gz /usr/share/man/man1/auditrelay-run.1.gz \
         /usr/share/bash-completion/completions/auditrelay \
         /usr/share/zsh/vendor-completions/_auditrelay \
         /usr/share/fish/vendor_completions.d/auditrelay.fish; do
  dpkg -S "$f" >/dev/null || { echo "not installed by the package: $f"; exit 1; }
done
MANWIDTH=80 man -l /usr/share/man/man1/auditrelay.1.gz | head -n 5
