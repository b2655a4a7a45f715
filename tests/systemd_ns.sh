#!/bin/bash
# Boot /lib/systemd/systemd as PID 1 of fresh pid/mount/uts/ipc/net/cgroup namespaces, loading
# only the units in $UNITDIR and starting $START_UNIT. Used by tests/fixtures_systemd.py.
#
# Host-side effects: one cgroup2 directory ($CG, removed by the fixture) and files under $E2E.
# Inside: /etc and /var are overlays whose upper dirs live under $E2E, /run is systemd's own
# tmpfs, /tmp a fresh tmpfs (only $E2E is carried over: keep everything the units need in it),
# /proc/sys and /sys are read-only, PID 1's console is a file ($E2E/logs/console.log).
# Stop: SIGKILL the unshare process (it ignores SIGTERM); --kill-child takes PID 1 down.
#
# Env: E2E (work dir, required), UNITDIR (default $E2E/units), START_UNIT (default
# cw-e2e.target), CG (required: a cgroup2 directory we may create), PID1_LOG_LEVEL (info),
# SYSCTL_CONF (a sysctl.d file to apply; default: open net.ipv4.ping_group_range to all).
set -euo pipefail
: "${E2E:?E2E must name a work directory}" "${CG:?CG must name a cgroup2 directory}"
E2E=$(realpath "$E2E")
UNITDIR=${UNITDIR:-$E2E/units}
START_UNIT=${START_UNIT:-cw-e2e.target}
if [[ "${1:-}" != --inner ]]; then
  mkdir -p "$CG" "$E2E/logs"
  echo $$ > "$CG/cgroup.procs"          # the new cgroup namespace is rooted at $CG
  exec unshare --pid --fork --kill-child=SIGKILL --mount --propagation private \
       --uts --ipc --net --cgroup --mount-proc "$0" --inner
fi
# ---- inside the namespaces; we are PID 1 until we exec systemd ----
OVL=$E2E/ovl; rm -rf "$OVL/work"; mkdir -p "$OVL"/{etc,var}-up "$OVL"/work/{etc,var}
mount -t overlay overlay -o lowerdir=/etc,upperdir="$OVL/etc-up",workdir="$OVL/work/etc" /etc
mount -t overlay overlay -o lowerdir=/var,upperdir="$OVL/var-up",workdir="$OVL/work/var" /var
# Container-mode systemd does not make / shared itself; LoadCredential= needs a shared /run.
mount --make-rshared /
# net.* sysctls are per network namespace: this changes the test's namespace only.
if [[ -n "${SYSCTL_CONF:-}" ]]; then sysctl -q -p "$SYSCTL_CONF"
else sysctl -q -w net.ipv4.ping_group_range="0 2147483647"; fi
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys
# The host is hybrid (v1 + v2 at /sys/fs/cgroup/unified): give systemd a pure v2 hierarchy.
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
: > "$E2E/logs/console.log"; mount --bind "$E2E/logs/console.log" /dev/console
# A private /tmp: PrivateTmp= units get /tmp/systemd-private-* directories, which a SIGKILLed
# PID 1 never removes — they must not land in the host's /tmp. $E2E (usually under /tmp) is
# carried over through an open file descriptor (--no-canonicalize: mount would resolve
# /proc/self/fd/9 back to the path, by then hidden).
exec 9<"$E2E"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
if [[ "$E2E" == /tmp/* ]]; then
  mkdir -p "$E2E" && mount --no-canonicalize --bind /proc/self/fd/9 "$E2E"
fi
exec 9<&-
hostname cw-e2e
export container=unshare SYSTEMD_UNIT_PATH="$UNITDIR"
exec /lib/systemd/systemd --system --unit="$START_UNIT" --log-target=journal \
     --log-level="${PID1_LOG_LEVEL:-info}" --show-status=no </dev/null >/dev/null 2>&1
