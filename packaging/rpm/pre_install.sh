# The service user, before the files land (sysusers.d as systemd-sysusers reads it).
if command -v systemd-sysusers >/dev/null 2>&1; then
    echo 'u auditrelay - "auditrelay audit-log forwarder" /var/lib/auditrelay /usr/sbin/nologin' | systemd-sysusers - || :
elif ! getent passwd auditrelay >/dev/null 2>&1; then
    useradd -r -M -d /var/lib/auditrelay -s /usr/sbin/nologin -c "auditrelay audit-log forwarder" auditrelay || :
fi
