# Upgrade: restart a running service on the new binary. State in
# /var/lib/auditrelay and the user are kept (as with the .deb).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart auditrelay.service >/dev/null 2>&1 || :
    fi
fi
