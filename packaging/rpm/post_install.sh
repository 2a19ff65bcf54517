# /var/lib/auditrelay (0700) and /var/log/auditrelay, also where systemd is
# not running (containers, image builds); the unit is installed but neither
# enabled nor started: edit /etc/auditrelay/auditrelay.toml first.
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create /usr/lib/tmpfiles.d/auditrelay.conf >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
