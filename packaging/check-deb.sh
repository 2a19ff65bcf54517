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
echo "== man page and completions"
for f in /usr/share/man/man1/auditrelay.1.gz /usr/share/man/man1/auditrelay-run.1.gz \
         /usr/share/bash-completion/completions/auditrelay \
         /usr/share/zsh/vendor-completions/_auditrelay \
         /usr/share/fish/vendor_completions.d/auditrelay.fish; do
  dpkg -S "$f" >/dev/null || { echo "not installed by the package: $f"; exit 1; }
done
MANWIDTH=80 man -l /usr/share/man/man1/auditrelay.1.gz | head -n 5
