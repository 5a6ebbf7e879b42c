# aioftpd %post. The data root: root-owned, readable by the daemon's group,
# setgid; created only when missing and not owned by the package, so erasing
# the package never deletes served files.
[ -e /srv/ftp ] || install -d -m 2750 -o root -g aioftpd /srv/ftp
# As %systemd_post does: on first install let the distribution's preset
# decide whether the service is enabled (Fedora/RHEL: disabled until
# `systemctl enable --now aioftpd`). aioftpd.socket is left disabled
# whatever the preset, as in the .deb: enabled, it overrides `listen`.
# Nothing is done without systemd.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl --no-reload preset aioftpd.service >/dev/null 2>&1 || :
    fi
fi
exit 0
