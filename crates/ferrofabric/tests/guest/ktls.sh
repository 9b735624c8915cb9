#!/bin/sh
# Guest script for run-vm --kernel 6.12 (busybox sh): our NVMe/TCP TLS target and initiator, both in
# the guest and talking over loopback, must hand their record keys to kernel TLS and then carry I/O.
# The host (tests/ktls_vm.rs) appends a payload to a copy of this script, after a line
# __FF_PAYLOAD__: base64 of a gzipped tar holding
#   ferrofabric       our binary (stripped)
#   lib/              shared libraries it needs that the guest image lacks (often empty)
#   modules/NN-*.ko   kernel modules, dependencies first (tls, gcm, ghash and what they need)
#   modules.list      their names, in load order
# Steps: unpack; insmod the modules; `tls` must be in tcp_available_ulp; the binary runs; a PSK from
# `ferrofabric gen-tls-key`; `ferrofabric target` with a TLS listener and a RAM namespace;
# `ferrofabric perf --psk` with verify against it. The kernel's own counters (/proc/net/tls_stat)
# must show a software kTLS context in each direction for the target's end of every connection and
# for the host's end of every I/O queue (the host moves I/O queues to kTLS after setup; its admin
# queue stays on user-space records), the target must log ktls=true for each, neither end may warn
# "kernel TLS unavailable", and perf must complete with no I/O or verify error. Then the same with
# `perf --no-ktls` (user-space records at the host end): the counters must grow by exactly one per
# connection, which shows that they tell the two ends apart.
# Env: KTLS_SECONDS (3: perf's measured seconds), KTLS_QUEUES (2: perf's I/O queues).
# Prints PASS:/FAIL: per check, TGTLOG:/PERFLOG:/TLSSTAT: lines, and ends with "N passed, N failed";
# exits 1 if any check failed.
set -u
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
stat_of() { awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print -1 }' /proc/net/tls_stat 2>/dev/null || echo -1; }

SECS=${KTLS_SECONDS:-3}
QUEUES=${KTLS_QUEUES:-2}
D=/opt/ff
NQN=nqn.2026-12.io.ferrofabric:ktls
HOSTNQN=nqn.2014-08.org.nvmexpress:uuid:7e1a0c5e-1f00-4c2b-9d1e-0123456789ab
TLSPORT=4420
PLAINPORT=4430
echo "ktls: kernel $(uname -r); tcp_available_ulp before: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"

# 1. the payload
t0=$(now)
mkdir -p "$D"
line=$(grep -n -m 1 '^__FF_PAYLOAD__$' "$0" | cut -d: -f1)
if [ -n "$line" ] && tail -n +"$((line + 1))" "$0" | base64 -d | gunzip | tar -x -C "$D" && [ -x "$D/ferrofabric" ]; then
  pass "payload unpacked in $(since "$t0")s: $(ls "$D/modules" | wc -l) modules, $(ls "$D/lib" 2>/dev/null | wc -l) libraries"
else
  fail "payload (marker line ${line:-missing})"; finish
fi

# 2. kernel TLS: load the modules, then the ULP must be there
while read -r m; do
  [ -n "$m" ] || continue
  name=$(echo "${m#[0-9][0-9]-}" | sed 's/\.ko$//; s/-/_/g')
  if [ -d "/sys/module/$name" ]; then
    echo "module $name already loaded"
  elif insmod "$D/modules/$m"; then
    echo "insmod $m"
  else
    fail "insmod $m"
  fi
done <"$D/modules.list"
ulp=$(cat /proc/sys/net/ipv4/tcp_available_ulp)
case " $ulp " in
  *" tls "*) pass "tls ULP available (tcp_available_ulp: $ulp)" ;;
  *) fail "no tls ULP (tcp_available_ulp: $ulp)"; finish ;;
esac
grep -q 'gcm(aes)' /proc/crypto && echo "crypto: $(grep -A3 '^name *: gcm(aes)' /proc/crypto | grep -E 'driver' | head -n1)"
if [ -r /proc/net/tls_stat ]; then pass "/proc/net/tls_stat present"; else fail "no /proc/net/tls_stat"; finish; fi

# 3. our binary
FF="$D/ferrofabric"
export LD_LIBRARY_PATH="$D/lib"
if /lib64/ld-linux-x86-64.so.2 --list "$FF" >/tmp/ldd.out 2>&1 && ! grep -q 'not found' /tmp/ldd.out; then
  pass "ferrofabric resolves its libraries: $(awk '$2 == "=>" { printf "%s ", $1 }' /tmp/ldd.out)"
else
  fail "ferrofabric libraries"; cat /tmp/ldd.out
fi
if "$FF" --help >/tmp/help.out 2>&1; then pass "ferrofabric --help runs"; else fail "ferrofabric --help"; cat /tmp/help.out; finish; fi
KEY=$("$FF" gen-tls-key 2>/tmp/key.err | grep -o -m 1 'NVMeTLSkey-1:[0-9a-f][0-9a-f]:[A-Za-z0-9+/=]*:')
if [ -n "$KEY" ]; then
  pass "gen-tls-key: $(echo "$KEY" | cut -d: -f1,2):<$(echo "$KEY" | cut -d: -f3 | wc -c) base64 chars>:"
else
  fail "ferrofabric gen-tls-key (this binary has no TLS?): $(cat /tmp/key.err)"; finish
fi

# 4. target with a TLS listener, and perf through it
# The logs without their ANSI colours (tracing colours field names: ktls<ESC>[0m=true).
plain() { tr -d '\033' <"$1" | sed 's/\[[0-9;]*m//g'; }
tlog() { plain /tmp/target.log; }
listening() { # PORT: a socket in LISTEN on it
  hex=$(printf '%04X' "$1")
  grep -q ":$hex 00000000:0000 0A" /proc/net/tcp
}
RUST_LOG=info "$FF" target --tls-listen 127.0.0.1:$TLSPORT --listen 127.0.0.1:$PLAINPORT --no-discovery-port \
  --no-iscsi --no-rpc --nqn "$NQN" --backend ram --size 64M --psk "$HOSTNQN=$KEY" \
  >/tmp/target.out 2>/tmp/target.log &
TPID=$!
i=0
while ! listening $TLSPORT && [ $i -lt 300 ] && kill -0 $TPID 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if listening $TLSPORT; then pass "target listening on TLS port $TLSPORT"; else fail "target did not listen"; tlog | sed 's/^/TGTLOG: /'; finish; fi

perf() { # TAG EXTRA-ARGS...: one perf run with verify; sets PRC
  tag=$1; shift
  t0=$(now)
  RUST_LOG=ff_initiator=debug,info timeout 120 "$FF" perf --addr 127.0.0.1:$TLSPORT --nqn "$NQN" --hostnqn "$HOSTNQN" \
    --psk "$KEY" -q 4 -o 4K -w randrw -t "$SECS" --warmup 1 --queues "$QUEUES" --verify --size 16M "$@" \
    >/tmp/perf-$tag.out 2>/tmp/perf-$tag.log
  PRC=$?
  echo "perf $tag: exit $PRC after $(since "$t0")s"
  sed "s/^/PERFOUT-$tag: /" /tmp/perf-$tag.out
  plain /tmp/perf-$tag.log | grep -iE 'tls|ktls|error|warn' | sed "s/^/PERFLOG-$tag: /"
}
tls_lines() { tlog | grep -c 'TLS established'; }

tx0=$(stat_of TlsTxSw) rx0=$(stat_of TlsRxSw) est0=$(tls_lines)
perf ktls
tx1=$(stat_of TlsTxSw) rx1=$(stat_of TlsRxSw) est1=$(tls_lines)
conns=$((est1 - est0))
kt=$(tlog | grep 'TLS established' | grep -c 'ktls=true')
tlog | grep 'TLS established' | sed 's/^/TGTLOG: /'
echo "TLSSTAT: after the kTLS run: TlsTxSw $tx0 -> $tx1, TlsRxSw $rx0 -> $rx1, target connections $conns"
[ $PRC -eq 0 ] && pass "perf over TLS completed (exit 0)" || { fail "perf over TLS (exit $PRC)"; plain /tmp/perf-ktls.log | sed 's/^/PERFLOG: /' | tail -n 40; }
# perf ends with "errors: 0" and its verify line says "no mismatch" when every read matched.
if ! grep -q '^errors: 0$' /tmp/perf-ktls.out || ! grep -q '^verify: .*: no mismatch$' /tmp/perf-ktls.out; then
  fail "perf printed no report, or errors"
else
  pass "perf reported no I/O or verify error"
fi
[ $conns -ge $((QUEUES + 1)) ] && pass "target established $conns TLS connections (admin + $QUEUES I/O queues)" || fail "target established $conns TLS connections, want >= $((QUEUES + 1))"
[ "$kt" -eq "$est1" ] && [ $conns -gt 0 ] && pass "target: ktls=true on all $kt TLS connections" || fail "target: ktls=true on $kt of $est1 TLS connections"
if { tlog; plain /tmp/perf-ktls.log; } | grep -q 'kernel TLS unavailable'; then fail "an end warned: kernel TLS unavailable"; else pass "no end warned 'kernel TLS unavailable'"; fi
# The target's end of every connection is on kTLS; the host moves its I/O queues there after setup (its
# admin queue stays on user-space records).
want=$((conns + QUEUES))
[ $((tx1 - tx0)) -eq $want ] && [ $conns -gt 0 ] && pass "kernel: TlsTxSw +$((tx1 - tx0)) = $conns target ends + $QUEUES host I/O queues send through kTLS" \
  || fail "kernel: TlsTxSw +$((tx1 - tx0)), want $conns + $QUEUES"
[ $((rx1 - rx0)) -eq $want ] && [ $conns -gt 0 ] && pass "kernel: TlsRxSw +$((rx1 - rx0)) = $conns target ends + $QUEUES host I/O queues receive through kTLS" \
  || fail "kernel: TlsRxSw +$((rx1 - rx0)), want $conns + $QUEUES"

# 5. control: the host end in user space; the kernel must count the target's end only
perf userspace --no-ktls
tx2=$(stat_of TlsTxSw) rx2=$(stat_of TlsRxSw) est2=$(tls_lines)
c2=$((est2 - est1))
echo "TLSSTAT: after the --no-ktls run: TlsTxSw $tx1 -> $tx2, TlsRxSw $rx1 -> $rx2, target connections $c2"
[ $PRC -eq 0 ] && pass "perf --no-ktls completed (exit 0)" || fail "perf --no-ktls (exit $PRC)"
[ $c2 -gt 0 ] && [ $((tx2 - tx1)) -eq $c2 ] && [ $((rx2 - rx1)) -eq $c2 ] \
  && pass "kernel: --no-ktls run added exactly $c2 TX and RX contexts (the target's ends only)" \
  || fail "kernel: --no-ktls run added TX +$((tx2 - tx1)) RX +$((rx2 - rx1)) for $c2 connections"

kill $TPID 2>/dev/null
wait $TPID 2>/dev/null
errs=$(stat_of TlsDecryptError)
[ "$errs" = 0 ] && pass "kernel: TlsDecryptError 0" || fail "kernel: TlsDecryptError $errs"
sed 's/^/TLSSTAT: /' /proc/net/tls_stat
tlog | grep -iE 'warn|error|closing' | sed 's/^/TGTLOG: /'
finish
