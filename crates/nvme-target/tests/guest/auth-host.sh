#!/bin/sh
# Guest script for run-vm --kernel 6.12 (busybox sh): the Linux NVMe/TCP host authenticates to our
# target with DH-HMAC-CHAP, uses it, and is refused with a wrong secret.
#   usage: auth-host.sh ADDR PORT[,PORT...] NQN HOSTNQN KEY [CTRLKEY]
# For each PORT (one target each, e.g. with a different hash / DH group policy): nvme connect
# --dhchap-secret KEY (and --dhchap-ctrl-secret CTRLKEY: bidirectional), the kernel log must say
# the admin queue authenticated (and, bidirectional, the controller), 1 MiB written with dd and
# read back (md5), disconnect. On the first PORT also a re-authentication (the secret written to
# sysfs) while a 64 MiB read runs, and after the loop a wrong host secret (and with CTRLKEY a
# wrong controller secret) that must not connect.
# Env: WRONG_KEY (a valid DHHC-1 secret that is not KEY; else nvme gen-dhchap-key makes one),
#      AUTH_ADMIN_TIMEOUT (10: nvme_core admin timeout, seconds).
# Prints PASS:/FAIL: per check, "AUTHLOG:" kernel lines, "TIME:" connect times, and ends with
# "N passed, N failed"; exits 1 if any check failed.
set -u
if [ $# -lt 5 ] || [ $# -gt 6 ]; then
  echo "usage: auth-host.sh ADDR PORT[,PORT...] NQN HOSTNQN KEY [CTRLKEY]" >&2
  exit 2
fi
ADDR=$1 PORTS=$2 NQN=$3 HOSTNQN=$4 KEY=$5 CTRLKEY=${6:-}
passed=0 failed=0
OUT=/tmp/auth.out
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
check() { if [ "$2" -eq 0 ]; then pass "$1"; else fail "$1 (exit $2)"; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

ctrl_of() { # a live tcp controller of NQN
  for c in /sys/class/nvme/nvme*; do
    [ -e "$c/subsysnqn" ] || continue
    [ "$(cat "$c/subsysnqn")" = "$NQN" ] && [ "$(cat "$c/state")" = live ] && { echo "${c##*/}"; return 0; }
  done
  return 1
}
ns_of() {
  for b in /sys/block/nvme*n*; do
    n=${b##*/}
    case $n in *c*) continue ;; esac
    [ "$(cat "$b/device/subsysnqn" 2>/dev/null)" = "$NQN" ] && { echo "/dev/$n"; return 0; }
  done
  return 1
}
any_ctrl() {
  for c in /sys/class/nvme/nvme*; do
    [ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$NQN" ] && return 0
  done
  return 1
}
wait_for() { # SECONDS CMD
  i=0
  while [ $i -lt $(($1 * 10)) ]; do "$2" >/dev/null && return 0; sleep 0.1; i=$((i + 1)); done
  return 1
}
gone() { ! any_ctrl; }
connect() { # PORT EXTRA-ARGS...
  p=$1; shift
  timeout 90 nvme connect -t tcp -a "$ADDR" -s "$p" -n "$NQN" --hostnqn="$HOSTNQN" "$@" >"$OUT" 2>&1
}
klog() { dmesg -c | grep -iE 'authenticat|dh-hmac-chap|failed|error' | sed 's/^/AUTHLOG: /'; }

echo 7 >/proc/sys/kernel/printk
modprobe nvme_tcp
for m in hmac sha256_generic sha512_generic dh_generic; do modprobe "$m" 2>/dev/null; done
echo "${AUTH_ADMIN_TIMEOUT:-10}" >/sys/module/nvme_core/parameters/admin_timeout
echo "auth-host: kernel $(uname -r), $(nvme version | head -n1), ports $PORTS, $([ -n "$CTRLKEY" ] && echo bidirectional || echo unidirectional)"
dmesg -c >/dev/null

FIRST=''
for PORT in $(echo "$PORTS" | tr ',' ' '); do
  [ -n "$FIRST" ] || FIRST=$PORT
  echo "=== port $PORT"
  t0=$(now)
  if [ -n "$CTRLKEY" ]; then
    connect "$PORT" --dhchap-secret="$KEY" --dhchap-ctrl-secret="$CTRLKEY"
  else
    connect "$PORT" --dhchap-secret="$KEY"
  fi
  rc=$?
  cat "$OUT"
  NS=''
  [ $rc -eq 0 ] && wait_for 20 ctrl_of && NS=$(wait_for 20 ns_of && ns_of)
  echo "TIME: port $PORT connect with DH-HMAC-CHAP until the namespace appeared: $(since "$t0")s (guest clock, emulated)"
  [ -n "$NS" ]
  check "port $PORT: nvme connect with DH-HMAC-CHAP -> ${NS:-no namespace}" $?
  klog >"$OUT.klog"
  cat "$OUT.klog"
  grep -q 'qid 0: authenticated' "$OUT.klog"
  check "port $PORT: kernel log: qid 0 authenticated" $?
  # The kernel logs only the admin queue; the target refuses I/O on a queue that did not
  # authenticate, so the I/O below proves the I/O queues did (the host test also counts them).
  if [ -n "$CTRLKEY" ]; then
    grep -q 'controller authenticated' "$OUT.klog"
    check "port $PORT: kernel log: the host authenticated the controller" $?
  fi
  if [ -n "$NS" ]; then
    dd if=/dev/urandom of=/tmp/data bs=64k count=16 2>/dev/null
    want=$(md5sum </tmp/data | cut -d' ' -f1)
    dd if=/tmp/data of="$NS" bs=64k count=16 oflag=direct conv=fsync 2>/dev/null
    check "port $PORT: write 1 MiB" $?
    got=$(dd if="$NS" bs=64k count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
    [ "$got" = "$want" ]
    check "port $PORT: read it back (md5 $got)" $?
    if [ "$PORT" = "$FIRST" ]; then
      # Re-authentication (writing the secret to sysfs re-runs DH-HMAC-CHAP on every queue)
      # while a read runs: the read must not fail.
      C=$(ctrl_of)
      dd if="$NS" of=/dev/null bs=64k count=1024 iflag=direct 2>/dev/null &
      ddpid=$!
      sleep 0.2
      echo "$KEY" >"/sys/class/nvme/$C/dhchap_secret"
      check "port $PORT: re-authentication requested through /sys/class/nvme/$C/dhchap_secret" $?
      wait $ddpid
      check "port $PORT: 64 MiB read across the re-authentication" $?
      sleep 1
      klog >"$OUT.klog"
      cat "$OUT.klog"
      grep -q 'qid 0: authenticated' "$OUT.klog" && [ "$(cat "/sys/class/nvme/$C/state")" = live ]
      check "port $PORT: kernel log: qid 0 re-authenticated, controller still live" $?
    fi
  else
    fail "port $PORT: I/O (no namespace)"
  fi
  nvme disconnect -n "$NQN" >/dev/null 2>&1
  wait_for 20 gone
  check "port $PORT: disconnect" $?
done

refused() { # LABEL EXTRA-ARGS...: must not connect, must leave no controller
  l=$1; shift
  t0=$(now)
  connect "$FIRST" "$@"
  rc=$?
  cat "$OUT"
  echo "TIME: $l refused after $(since "$t0")s"
  klog
  if [ $rc -ne 0 ] && ! wait_for 2 ctrl_of; then
    pass "$l: refused (exit $rc)"
  else
    fail "$l: connected (exit $rc)"
  fi
  nvme disconnect -n "$NQN" >/dev/null 2>&1
  wait_for 20 gone
}

BAD=${WRONG_KEY:-$(nvme gen-dhchap-key --nqn="$HOSTNQN" 2>/dev/null | grep -o 'DHHC-1:[^ ]*' | head -n1)}
if [ -z "$BAD" ] || [ "$BAD" = "$KEY" ]; then
  fail "no wrong key to try (set WRONG_KEY)"
else
  echo "=== wrong secrets on port $FIRST"
  refused "wrong --dhchap-secret" --dhchap-secret="$BAD"
  if [ -n "$CTRLKEY" ]; then
    refused "wrong --dhchap-ctrl-secret" --dhchap-secret="$KEY" --dhchap-ctrl-secret="$BAD"
  fi
fi
finish
