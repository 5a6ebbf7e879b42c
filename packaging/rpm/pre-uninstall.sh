# aioftpd %preun (as %systemd_preun): on erase (not upgrade) stop and
# disable the service and its socket; nothing to do without systemd.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now aioftpd.service aioftpd.socket >/dev/null 2>&1 || :
fi
exit 0
