# /var/lib/auditrelay (0700) and /var/log/auditrelay, also where systemd is
# not running (containers, image builds); the unit is installed but neither
# enabled nor started: edit /etc/auditrelay/auditrelay.toml first.
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create /usr/lib/tmpfiles.d/auditrelay.conf >/dev/null 2>&1 || :
fi
# The config can hold secrets: 0640 root:auditrelay, readable by the service
# and not by every local user. Only while it is as packaged (root:root, 0640
# or the 0644 of earlier releases): an administrator's own choice is kept.
conf=/etc/auditrelay/auditrelay.toml
if [ -f "$conf" ] && getent group auditrelay >/dev/null 2>&1; then
    case "$(stat -c '%U:%G %a' "$conf" 2>/dev/null)" in
        "root:root 640" | "root:root 644") chgrp auditrelay "$conf" && chmod 0640 "$conf" || : ;;
    esac
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
