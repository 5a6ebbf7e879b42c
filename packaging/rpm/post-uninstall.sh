# aioftpd %postun (as %systemd_postun_with_restart): after an upgrade
# restart a running service (SIGTERM drains transfers first); after erase
# forget the unit. /srv/ftp and the aioftpd account are kept.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart aioftpd.service >/dev/null 2>&1 || :
    fi
fi
exit 0
