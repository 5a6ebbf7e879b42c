# aioftpd %pre: the system account exists before the files land, so
# /etc/aioftpd.toml can be installed root:aioftpd 0640.
getent group aioftpd >/dev/null || groupadd -r aioftpd
getent passwd aioftpd >/dev/null || \
    useradd -r -g aioftpd -d /srv/ftp -M -s /sbin/nologin \
        -c "aioftpd FTP server" aioftpd
exit 0
