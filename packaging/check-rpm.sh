#!/usr/bin/env bash
# Build the .rpm (cargo generate-rpm, from [package.metadata.generate-rpm] in
# Cargo.toml) from the release binary and the generated man pages and
# completions, lint it, list it, install it into a scratch root and check
# that every file landed. Run after check-deb.sh (which makes the release
# build and target/assets/); builds them itself otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-generate-rpm >/dev/null || cargo install cargo-generate-rpm --locked --quiet
[ -x target/release/auditrelay ] || cargo build --release --quiet
[ -f target/assets/man/auditrelay.1.gz ] || bash packaging/check-docs.sh
mkdir -p target/rpm
strip -s -o target/rpm/auditrelay target/release/auditrelay
rm -rf target/generate-rpm
cargo generate-rpm
rpm=$(ls target/generate-rpm/auditrelay-*.rpm)

echo "== rpmlint $rpm"
# packaging/rpm/rpmlintrc lists each accepted finding with its reason.
lint=$(rpmlint --file packaging/rpm/rpmlintrc "$rpm" 2>&1) || { echo "$lint"; echo "rpmlint found errors"; exit 1; }
echo "$lint"
grep -q ' 0 errors, 0 warnings' <<<"$lint" || { echo "rpmlint: a finding not in packaging/rpm/rpmlintrc"; exit 1; }

echo "== rpm -qpl"
rpm -qpil "$rpm"
echo "== scriptlets"
rpm -qp --scripts "$rpm"
rpm -qp --scripts "$rpm" | awk '/^[a-z]+ scriptlet/ {next} {print}' | sh -n

expected="/usr/bin/auditrelay
/etc/auditrelay/auditrelay.toml
/usr/lib/systemd/system/auditrelay.service
/usr/lib/sysusers.d/auditrelay.conf
/usr/lib/tmpfiles.d/auditrelay.conf
/usr/share/doc/auditrelay/README.md
/usr/share/doc/auditrelay/config.example.toml
/usr/share/licenses/auditrelay/LICENSE
/usr/share/man/man1/auditrelay.1.gz
/usr/share/man/man1/auditrelay-run.1.gz
/usr/share/man/man1/auditrelay-check.1.gz
/usr/share/man/man1/auditrelay-status.1.gz
/usr/share/man/man1/auditrelay-replay.1.gz
/usr/share/man/man1/auditrelay-dead-letters.1.gz
/usr/share/bash-completion/completions/auditrelay
/usr/share/zsh/site-functions/_auditrelay
/usr/share/fish/vendor_completions.d/auditrelay.fish"
listed=$(rpm -qpl "$rpm")
for f in $expected; do
  grep -qx "$f" <<<"$listed" || { echo "not in the package: $f"; exit 1; }
done
rpm -qp --configfiles "$rpm" | grep -qx /etc/auditrelay/auditrelay.toml || { echo "auditrelay.toml is not a config file"; exit 1; }
rpm -qplv "$rpm" | awk '$NF == "/etc/auditrelay/auditrelay.toml" {print $1}' | grep -qx -- '-rw-r-----' ||
  { echo "the packaged config is not 0640"; exit 1; }

echo "== rpm -i --root (scratch)"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
rpm --root "$root" --initdb
# --noscripts: the scratch root has no shell or systemd to run them in
# (their syntax is checked above).
rpm -i --root "$root" --nodeps --noscripts "$rpm"
rpm --root "$root" -qa | grep -q '^auditrelay-'
for f in $expected; do
  [ -f "$root$f" ] || { echo "not installed: $f"; exit 1; }
done
[ -x "$root/usr/bin/auditrelay" ]
cmp "$root/usr/lib/systemd/system/auditrelay.service" systemd/auditrelay.service
# 0640 as packaged (post_install.sh, not run here, gives it group auditrelay).
[ "$(stat -c %a "$root/etc/auditrelay/auditrelay.toml")" = 640 ] || { echo "the installed config is not 0640"; exit 1; }
"$root/usr/bin/auditrelay" check --config "$root/etc/auditrelay/auditrelay.toml"
rpm --root "$root" -V --nodeps auditrelay
echo "rpm -V: every file as packaged"
echo "== the .rpm and the .deb install the same files (but distro paths for zsh and the licence)"
if deb=$(ls -t target/debian/auditrelay_*.deb 2>/dev/null | head -n 1) && [ -n "$deb" ]; then
  norm() { sed -e 's|^\./|/|' -e 's|/usr/share/zsh/vendor-completions/|/usr/share/zsh/site-functions/|' \
    -e 's|/usr/share/doc/auditrelay/copyright|/usr/share/licenses/auditrelay/LICENSE|' | grep -v '/$' | sort; }
  diff <(dpkg-deb -c "$deb" | awk '{print $6}' | norm) <(rpm -qpl "$rpm" | norm) ||
    { echo "the .deb and the .rpm differ"; exit 1; }
fi
echo "rpm OK: $rpm"
