#!/bin/sh
# Installs Caretaker from the release tarball on systems without dpkg:
# binaries, hardened systemd units, default configs (an existing config is
# never overwritten: the new default goes beside it as *.toml.new), the
# caretaker system user and the state directories; enables the services when
# systemd is running. Run from the unpacked tarball, as root.
#
#   ./install.sh [--root DIR] [--prefix DIR] [agent] [collector]
#
# Without a component both are installed. --prefix (default /usr/local) is
# where bin/ goes; --root installs into DIR as if it were / (for images and
# tests): no user is created and no service enabled there.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=/
prefix=/usr/local
components=""
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=$2; shift 2 ;;
        --prefix) prefix=$2; shift 2 ;;
        agent|collector) components="$components $1"; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$components" ] || components="agent collector"
root=${root%/}
live=false
[ -z "$root" ] && live=true

if $live && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (or pass --root DIR)" >&2
    exit 1
fi

state_of() { if [ "$1" = agent ]; then echo /var/lib/caretaker; else echo /var/lib/caretaker-collector; fi; }

ensure_user() {
    getent group caretaker >/dev/null || groupadd --system caretaker
    getent passwd caretaker >/dev/null ||
        useradd --system --gid caretaker --home-dir /var/lib/caretaker --no-create-home \
            --shell /usr/sbin/nologin --comment "Caretaker" caretaker
}

$live && ensure_user

for c in $components; do
    bin=caretaker-$c
    unit=$bin.service
    state=$(state_of "$c")
    install -d -m 0755 "$root$prefix/bin" "$root/etc/caretaker" "$root/etc/systemd/system"
    install -m 0755 "$here/bin/$bin" "$root$prefix/bin/$bin"
    # The units name /usr/bin; point them at where the binary went.
    sed "s|/usr/bin/$bin|$prefix/bin/$bin|g" "$here/systemd/$unit" >"$root/etc/systemd/system/$unit"
    chmod 0644 "$root/etc/systemd/system/$unit"
    if [ -e "$root/etc/caretaker/$c.toml" ]; then
        install -m 0640 "$here/config/$c.toml" "$root/etc/caretaker/$c.toml.new"
        echo "kept /etc/caretaker/$c.toml; the new default is /etc/caretaker/$c.toml.new"
    else
        install -m 0640 "$here/config/$c.toml" "$root/etc/caretaker/$c.toml"
    fi
    if $live; then
        chgrp caretaker "/etc/caretaker/$c.toml"
        install -d -o caretaker -g caretaker -m 0750 "$state"
        if [ "$c" = collector ] && [ ! -e "$state/ca.key" ]; then
            names="--san localhost --san 127.0.0.1 --san ::1 --san $(hostname)"
            fqdn=$(hostname -f 2>/dev/null || true)
            [ -n "$fqdn" ] && [ "$fqdn" != "$(hostname)" ] && names="$names --san $fqdn"
            # shellcheck disable=SC2086
            runuser -u caretaker -- "$prefix/bin/$bin" init --data-dir "$state" $names >/dev/null
            echo "initialized $state: enrollment token in $state/enrollment-token, metrics token in $state/metrics-token, agents' CA in $state/ca.pem"
        fi
        if [ -d /run/systemd/system ]; then
            systemctl daemon-reload
            systemctl enable "$unit"
            if [ "$c" = collector ] || [ -s "$state/credential.json" ]; then
                systemctl restart "$unit"
            else
                echo "caretaker-agent enabled, not started: enroll it first (README.md), then systemctl start $unit"
            fi
        fi
    else
        install -d -m 0750 "$root$state"
    fi
    echo "installed $bin"
done
