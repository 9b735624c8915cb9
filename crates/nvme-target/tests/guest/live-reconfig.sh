#!/bin/sh
# Guest script for run-vm (busybox sh): the Linux NVMe/TCP host follows a target that management
# reconfigures while the host is connected. The host test acts on each step this script reports on
# its control port (one line per TCP connection) and this script checks what the kernel then shows:
#   connected    -> the test adds namespace 2 (32 MiB)    -> it appears (no rescan asked for: the AEN)
#   saw-add      -> the test grows namespace 1 to 128 MiB -> the new size, the data written before kept
#   saw-resize   -> the test removes namespace 2          -> it disappears
#   saw-remove   -> the test deletes the subsystem        -> the controller leaves the live state
#   usage: live-reconfig.sh ADDR PORT SUBNQN CTLPORT
# Prints PASS:/FAIL: per check and ends with "N passed, N failed"; exits 1 if any check failed.
set -u
if [ $# -ne 4 ]; then
  echo "usage: live-reconfig.sh ADDR PORT SUBNQN CTLPORT" >&2
  exit 2
fi
ADDR=$1 PORT=$2 NQN=$3 CTL=$4
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
tell() { echo "$1" | timeout 10 nc "$ADDR" "$CTL" >/dev/null 2>&1 || echo "note: could not report $1"; }

ctrl_dir() { # the tcp controller of SUBNQN
  for c in /sys/class/nvme/nvme*; do
    [ -e "$c/subsysnqn" ] || continue
    [ "$(cat "$c/subsysnqn")" = "$NQN" ] && [ "$(cat "$c/transport")" = tcp ] && { echo "$c"; return 0; }
  done
  return 1
}
ns_dev() { # NSID: the block device of that namespace of SUBNQN
  for b in /sys/block/nvme*n*; do
    n=${b##*/}
    case $n in *c*) continue ;; esac # hidden per-path node
    [ "$(cat "$b/device/subsysnqn" 2>/dev/null)" = "$NQN" ] && [ "$(cat "$b/nsid" 2>/dev/null)" = "$1" ] \
      && { echo "/dev/$n"; return 0; }
  done
  return 1
}
mb() { echo $(($(blockdev --getsize64 "$1" 2>/dev/null || echo 0) / 1048576)); }
wait_until() { # SECONDS CMD...: poll until CMD succeeds
  t=$(($1 * 10)); shift
  while [ $t -gt 0 ]; do "$@" && return 0; sleep 0.1; t=$((t - 1)); done
  return 1
}
has_ns() { ns_dev "$1" >/dev/null; }
no_ns() { ! ns_dev "$1" >/dev/null; }
size_is() { d=$(ns_dev "$1") && [ "$(mb "$d")" -eq "$2" ]; }
not_live() { c=$(ctrl_dir) || return 0; [ "$(cat "$c/state")" != live ]; }

echo 1 >/proc/sys/kernel/printk
echo "live-reconfig: target $ADDR:$PORT $NQN, control port $CTL; kernel $(uname -r)"
if nvme discover -t tcp -a "$ADDR" -s "$PORT" | grep -q "subnqn: *$NQN"; then
  pass "discovery lists the subsystem created by RPC"
else
  fail "discovery lists the subsystem created by RPC"
fi
nvme connect -t tcp -a "$ADDR" -s "$PORT" -n "$NQN" || { fail "nvme connect"; finish; }
if wait_until 30 has_ns 1 && size_is 1 64; then pass "namespace 1 is there, 64 MiB"; else fail "namespace 1 (64 MiB)"; finish; fi
D1=$(ns_dev 1)
dd if=/dev/urandom of=/tmp/pat bs=1M count=4 2>/dev/null
dd if=/tmp/pat of="$D1" bs=1M count=4 oflag=direct conv=fsync 2>/dev/null && pass "wrote 4 MiB" || fail "write 4 MiB"
SUM=$(md5sum </tmp/pat)

tell connected
if wait_until 60 has_ns 2; then pass "namespace 2 appeared without a rescan (AEN)"; else fail "namespace 2 appeared"; fi
if size_is 2 32; then pass "namespace 2 is 32 MiB"; else fail "namespace 2 is 32 MiB"; fi

tell saw-add
if wait_until 60 size_is 1 128; then pass "namespace 1 grew to 128 MiB"; else fail "namespace 1 grew to 128 MiB (now $(mb "$D1") MiB)"; fi
if [ "$(dd if="$D1" bs=1M count=4 iflag=direct 2>/dev/null | md5sum)" = "$SUM" ]; then
  pass "data written before the resize reads back"
else
  fail "data written before the resize reads back"
fi
dd if=/tmp/pat of="$D1" bs=1M seek=120 count=4 oflag=direct conv=fsync 2>/dev/null
if [ "$(dd if="$D1" bs=1M skip=120 count=4 iflag=direct 2>/dev/null | md5sum)" = "$SUM" ]; then
  pass "the grown part is writable"
else
  fail "the grown part is writable"
fi

tell saw-resize
if wait_until 60 no_ns 2; then pass "namespace 2 disappeared"; else fail "namespace 2 disappeared"; fi

tell saw-remove
if wait_until 60 not_live; then pass "the controller of the deleted subsystem left the live state"; else fail "controller left live"; fi
nvme disconnect -n "$NQN" >/dev/null 2>&1
tell done
finish
