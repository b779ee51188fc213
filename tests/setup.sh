#!/usr/bin/env bash
# Installs the real components the end-to-end tests drive: Postfix (the MTA
# in front of the milter) and swaks (the SMTP client, with the Perl TLS
# modules it needs for STARTTLS); chromium, the headless browser that
# renders the `report --html` page in tests/report.rs and solves the
# challenge page in tests/challenge.rs; redis-server, the shared state
# store tests/fleet.rs starts (its own, on a loopback port). Debian 12, run as root; idempotent and
# quick when everything is present, so tests/run.sh can call it every time.
#
# The tests start their own private Postfix instances (tests/common/postfix.rs)
# on loopback ports. The system-wide Postfix must never run: it would listen
# on port 25. So the package is installed with "No configuration" (no
# /etc/postfix/main.cf, nothing to start), service starts are refused while
# apt runs, and a system instance found running after an install (or with
# no main.cf, so certainly by accident) is stopped.
set -euo pipefail

# g++: libfuzzer-sys compiles libFuzzer for the fuzz targets (fuzz/run.sh).
# openssl: the command makes OCSP responses and hashes the CA directory
# Postfix's smtpd_tls_CApath reads (tests/common/tls.rs).
# opendkim, opendkim-tools, libopendkim-dev: libopendkim is the second
# independent DKIM verifier of tests/differential.rs (its tool is compiled
# against libopendkim-dev); the opendkim daemon must never run (below).
PACKAGES=(postfix swaks libnet-ssleay-perl libio-socket-ssl-perl man-db groff-base m4 libwrap0 chromium g++ openssl redis-server
    opendkim opendkim-tools libopendkim-dev)

say() { echo "setup.sh: $*"; }

# One dpkg-query for all: "ii " marks an installed package; packages dpkg has
# never heard of are not listed at all.
installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${PACKAGES[@]}" 2>/dev/null |
    awk '$1 == "ii" { print $2 }' || true)
missing=()
for pkg in "${PACKAGES[@]}"; do
    grep -qx "$pkg" <<<"$installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        say "must run as root to install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # "No configuration": the package writes no main.cf, so no system
    # instance is configured to start at all.
    say "preseeding postfix/main_mailer_type = No configuration"
    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
    # Refuse service starts during the install (invoke-rc.d and
    # deb-systemd-invoke both honour policy-rc.d); ours is removed again on
    # exit, an existing one (containers have one) is left alone.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        say "blocking service starts during the install (temporary /usr/sbin/policy-rc.d)"
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    say "apt-get update"
    # apt's chatter is shown only when it fails.
    log=$(mktemp)
    apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    say "installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    rm -f "$log"
fi

# dkimpy is the independent DKIM implementation tests/signing.rs checks our
# signatures against (tests/tools/dkimpy_tool.py), in the python3 on PATH.
PYTHON_MODULES="import dkim, nacl, dns.resolver, cryptography"
if ! command -v python3 >/dev/null; then
    say "installing python3 (apt)"
    apt-get install -y -qq --no-install-recommends python3 python3-pip >/dev/null
fi
if ! python3 -c "$PYTHON_MODULES" 2>/dev/null; then
    say "installing dkimpy, pynacl, dnspython, cryptography (pip)"
    python3 -m pip install --quiet dkimpy==1.1.8 pynacl dnspython cryptography ||
        python3 -m pip install --quiet --break-system-packages dkimpy==1.1.8 pynacl dnspython cryptography
    python3 -c "$PYTHON_MODULES"
fi

# A system Postfix must not run: the package's install may have started
# one, and an unconfigured one (no /etc/postfix/main.cf) is an accident
# anyway. One the machine's owner configured is left alone, with a note.
pidfile=/var/spool/postfix/pid/master.pid
running=
if command -v systemctl >/dev/null && systemctl is-active --quiet postfix 2>/dev/null; then
    running=systemd
elif [[ -r $pidfile ]] && pid=$(tr -dc 0-9 <"$pidfile") && [[ -n $pid ]] &&
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == master ]]; then
    running=$pid
fi
if [[ -n $running ]]; then
    if ((${#missing[@]})) || [[ ! -e /etc/postfix/main.cf ]]; then
        say "stopping the system Postfix (${running})"
        if [[ $running == systemd ]]; then systemctl stop postfix; else postfix stop >/dev/null 2>&1 || kill "$running"; fi
    else
        say "note: a configured system Postfix is running; left alone (the tests use private instances)"
    fi
fi

# Nor a system Redis: the tests start their own (tests/common/redis.rs) on
# free loopback ports with temporary directories. Only the packaged
# instance (its pid file, or its systemd unit) is stopped and kept off.
redis_pid=/run/redis/redis-server.pid
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    say "stopping and disabling the system redis-server"
    systemctl stop redis-server
    systemctl disable --quiet redis-server 2>/dev/null || true
elif [[ -r $redis_pid ]] && pid=$(tr -dc 0-9 <"$redis_pid") && [[ -n $pid ]] &&
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-server ]]; then
    say "stopping the system redis-server ($pid)"
    kill "$pid"
fi

# The opendkim package enables its service; the tests only link its
# library. Service starts were refused during the install; it is disabled
# so that no boot starts it, and one found running after an install of ours
# is stopped (a system OpenDKIM the owner runs is left alone).
if ((${#missing[@]})) && printf '%s\n' "${missing[@]}" | grep -qx opendkim; then
    if command -v systemctl >/dev/null && systemctl is-enabled --quiet opendkim 2>/dev/null; then
        say "disabling the opendkim service (the tests use libopendkim only)"
        systemctl disable --now opendkim >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null && [[ -e /etc/init.d/opendkim ]]; then
        update-rc.d opendkim disable >/dev/null 2>&1 || true
    fi
    if pids=$(pgrep -x opendkim); then
        say "stopping the opendkim daemon the install started ($pids)"
        kill $pids 2>/dev/null || true
    fi
fi

# Sendmail conflicts with Postfix as an installed package, but runs fine
# unpacked (tests/common/sendmail.rs starts it from here).
SENDMAIL_ROOT=/opt/mailkey-tests/sendmail
if [[ ! -x $SENDMAIL_ROOT/usr/libexec/sendmail/sendmail ]]; then
    say "unpacking sendmail-bin, sendmail-cf, sendmail-base into $SENDMAIL_ROOT"
    debs=$(mktemp -d)
    chmod 755 "$debs"
    fetch() { (cd "$debs" && apt-get download -qq sendmail-bin sendmail-cf sendmail-base) >/dev/null 2>&1; }
    fetch || { apt-get update -qq >/dev/null 2>&1; fetch; } || { say "cannot download the Sendmail packages" >&2; exit 1; }
    mkdir -p "$SENDMAIL_ROOT"
    for deb in "$debs"/*.deb; do dpkg -x "$deb" "$SENDMAIL_ROOT"; done
    rm -rf "$debs"
fi

# cargo-deb builds the package that tests/package.rs installs.
if ! command -v cargo-deb >/dev/null; then
    say "installing cargo-deb (cargo install, a few minutes)"
    cargo install --locked --quiet cargo-deb
fi

say "ready: $(postconf -d -h mail_version 2>/dev/null | sed 's/^/postfix /'), $(swaks --version 2>/dev/null | head -n1), sendmail $("$SENDMAIL_ROOT/usr/libexec/sendmail/sendmail" -d0.1 -bt </dev/null 2>/dev/null | sed -n 's/^Version //p' | head -n1)"
