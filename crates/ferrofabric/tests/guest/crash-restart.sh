#!/bin/sh
# Guest script for run-vm (busybox sh): the Linux NVMe/TCP host keeps writing while the target is
# killed with SIGKILL and restarted from its saved configuration. The host must reconnect by itself
# (reconnect delay 1 s, controller loss timeout 120 s), fio's writes must all complete, and fio's
# verify pass must find every block it wrote.
#   writing -> (reported on the control port while fio writes) the test kills and restarts the target
#   usage: crash-restart.sh ADDR PORT SUBNQN CTLPORT
# Prints PASS:/FAIL: per check and ends with "N passed, N failed"; exits 1 if any check failed.
set -u
if [ $# -ne 4 ]; then
  echo "usage: crash-restart.sh ADDR PORT SUBNQN CTLPORT" >&2
  exit 2
fi
ADDR=$1 PORT=$2 NQN=$3 CTL=$4
MB=${CRASH_MB:-48}
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
tell() { echo "$1" | timeout 10 nc "$ADDR" "$CTL" >/dev/null 2>&1 || echo "note: could not report $1"; }
ns_dev() {
  for b in /sys/block/nvme*n*; do
    n=${b##*/}
    case $n in *c*) continue ;; esac
    [ "$(cat "$b/device/subsysnqn" 2>/dev/null)" = "$NQN" ] && { echo "/dev/$n"; return 0; }
  done
  return 1
}
ctrl_state() {
  for c in /sys/class/nvme/nvme*; do
    [ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$NQN" ] && { cat "$c/state"; return 0; }
  done
  echo none
}

echo 6 >/proc/sys/kernel/printk
echo "crash-restart: target $ADDR:$PORT $NQN, control port $CTL; kernel $(uname -r); $(fio --version)"
nvme connect -t tcp -a "$ADDR" -s "$PORT" -n "$NQN" --reconnect-delay=1 --ctrl-loss-tmo=120 \
  || { fail "nvme connect"; finish; }
i=0
while ! ns_dev >/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
DEV=$(ns_dev) || { fail "namespace block device"; finish; }
pass "connected: $DEV"
# Random 4 KiB writes over the whole area (each block once), then a verify pass reading every block.
fio --name=crash --filename="$DEV" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k --iodepth=16 \
  --size="${MB}M" --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
  --randrepeat=0 --group_reporting >/tmp/fio.out 2>&1 &
FIO=$!
sleep 2
tell writing
wait $FIO
rc=$?
grep -E 'IOPS=|err=|verify|error' /tmp/fio.out
if [ $rc -eq 0 ] && grep -q 'err= 0' /tmp/fio.out; then
  pass "fio wrote ${MB} MiB across the restart and verified every block"
else
  fail "fio (exit $rc)"; cat /tmp/fio.out
fi
st=$(ctrl_state)
[ "$st" = live ] && pass "the controller is live again" || fail "controller state $st"
dmesg | grep -iE 'nvme.*(reconnect|Successfully reconnected|starting error recovery)' | tail -n 5
if dmesg | grep -qi 'Successfully reconnected'; then pass "the host reconnected by itself"; else fail "no reconnect in dmesg"; fi
nvme disconnect -n "$NQN" >/dev/null 2>&1
tell done
finish
