#!/usr/bin/env bash
# blktests-remote adapter for the ferrofabric target (shared/tools/blktests-remote, README "Adapter
# interface"): the rig calls it as ADAPTER start|stop|reset|config|setup|cleanup; it drives a target
# process through `ferrofabric rpc`.
#
#   run-blktests.sh --adapter /path/to/contrib/blktests/ferrofabric.sh
#
# Environment: BLKTESTS_REMOTE_DIR (the rig, default ../shared/tools/blktests-remote beside this
# repository), FF_BIN (default: target/release/ferrofabric of this repository), FF_RPC_SOCK
# (/var/tmp/blktests-ferrofabric.sock), FF_BACKEND (ram, or file: a sparse file in $BT_STATE_DIR),
# FF_BLOCK_SIZE (512), FF_MDTS (8: 1 MiB transfers, nvme/029 needs at least 512 KiB), FF_TARGET_ARGS
# (more `ferrofabric target` flags, e.g. "--poll busy --sock uring"), FF_DHCHAP_HASHES and
# FF_DHCHAP_DHGROUPS (the target's DH-HMAC-CHAP policy, [auth] hashes / dhgroups, comma-separated, most
# preferred first; default: the target's, all of them, strongest first).
#
# DH-HMAC-CHAP (nvme/041-045, a guest kernel with NVMe auth): `setup --hostkey K [--ctrkey C]` gives
# the host's secret (and the controller's, for bidirectional authentication) to
# nvmf_subsystem_add_host. That is all of blktests' auth settings that reach a remote target: its
# _set_nvmet_hostkey/_ctrlkey/_hash/_dhgroup write the guest's own configfs even in remote mode. The
# target's policy is read at start only; the default (all hashes and groups) accepts whatever the host
# offers and picks the strongest pair (sha512, ffdhe8192).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
FF=${FF_BIN:-$repo/target/release/ferrofabric}
SOCK=${FF_RPC_SOCK:-/var/tmp/blktests-ferrofabric.sock}
BACKEND=${FF_BACKEND:-ram}
BS=${FF_BLOCK_SIZE:-512}
MDTS=${FF_MDTS:-8}
STATE=${BT_STATE_DIR:-/tmp/blktests-ferrofabric}
LISTEN=${BT_LISTEN_ADDR:-127.0.0.1}
PORT=${BT_TRSVCID:-4420}
SIZE_MB=${BT_IMG_SIZE_MB:-1024}
PIDFILE=$STATE/ferrofabric.pid
LOG=$STATE/ferrofabric.log
DISC=nqn.2014-08.org.nvmexpress.discovery
mkdir -p "$STATE"

err() { echo "ferrofabric adapter: $*" >&2; }
rpc() { "$FF" rpc -s "$SOCK" "$@"; }
our_pid() { [[ -f $PIDFILE ]] && kill -0 "$(<"$PIDFILE")" 2>/dev/null && cat "$PIDFILE"; }
# The namespace file of a subsystem (file backend).
img_of() { echo "$STATE/$(printf '%s' "$1" | sha1sum | cut -c1-16).img"; }
subsystems() { rpc --json nvmf_get_subsystems | sed -n 's/^ *"nqn": "\(.*\)",*$/\1/p'; }
# A DH-HMAC-CHAP secret as nvme gen-dhchap-key prints it; the target checks the rest (CRC, length).
is_secret() { [[ $1 =~ ^DHHC-1:[0-9]{2}:[A-Za-z0-9+/=]+:$ ]]; }
# "a,b" -> ["a", "b"] for the TOML config
toml_list() { local IFS=, out= x; for x in $1; do x=${x// /}; [[ -n $x ]] && out+="${out:+, }\"$x\""; done; echo "[$out]"; }

do_cleanup() { # NQN: delete the subsystem and its file; a missing one is fine
  rpc nvmf_delete_subsystem nqn="$1" >/dev/null 2>&1 || true
  rm -f "$(img_of "$1")"
}

# The rig's helpers (bt_config, bt_parse_args, bt_port_in_use): from BLKTESTS_REMOTE_DIR, or the rig
# beside this repository.
. "${BLKTESTS_REMOTE_DIR:-$repo/../shared/tools/blktests-remote}/adapters/common.sh"

cmd=${1:-}
shift || true
case $cmd in
  config)
    bt_config "$@" ;;

  start)
    [[ -x $FF ]] || { err "no ferrofabric binary at $FF (cargo build --release, or set FF_BIN)"; exit 2; }
    if pid=$(our_pid) && rpc ferrofabric_get_version >/dev/null 2>&1; then
      err "reusing the running target (pid $pid)"
    else
      if bt_port_in_use "$PORT"; then err "TCP port $PORT is already in use; pick another with --port"; exit 1; fi
      printf '[limits]\nmdts = %s\n' "$MDTS" >"$STATE/ferrofabric.toml"
      if [[ -n ${FF_DHCHAP_HASHES:-}${FF_DHCHAP_DHGROUPS:-} ]]; then
        echo '[auth]' >>"$STATE/ferrofabric.toml"
        [[ -n ${FF_DHCHAP_HASHES:-} ]] && echo "hashes = $(toml_list "$FF_DHCHAP_HASHES")" >>"$STATE/ferrofabric.toml"
        [[ -n ${FF_DHCHAP_DHGROUPS:-} ]] && echo "dhgroups = $(toml_list "$FF_DHCHAP_DHGROUPS")" >>"$STATE/ferrofabric.toml"
      fi
      # shellcheck disable=SC2086
      setsid "$FF" target --config "$STATE/ferrofabric.toml" --listen "$LISTEN:$PORT" --no-discovery-port \
        --rpc-socket "$SOCK" ${FF_TARGET_ARGS:-} </dev/null >"$LOG" 2>&1 &
      echo $! >"$PIDFILE"
      ok=0
      for _ in $(seq 100); do
        kill -0 "$(<"$PIDFILE")" 2>/dev/null || break
        if [[ -S $SOCK ]] && rpc ferrofabric_get_version >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
      done
      if ((!ok)); then
        err "the target did not come up; its log:"; tail -n 20 "$LOG" >&2
        kill "$(<"$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; exit 1
      fi
    fi
    echo "ferrofabric $(rpc --json ferrofabric_get_version | sed -n 's/^ *"version": "\(.*\)".*/\1/p') pid $(<"$PIDFILE"), TCP on $LISTEN:$PORT, MDTS $MDTS, namespaces: $BACKEND ${SIZE_MB} MiB, $BS B blocks" ;;

  stop)
    if pid=$(our_pid); then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then err "pid $pid ignored SIGTERM; killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$PIDFILE" "$STATE"/*.img ;;

  reset)
    our_pid >/dev/null || { err "reset: the target is not running"; exit 1; }
    for n in $(subsystems); do
      [[ $n == "$DISC" ]] || { err "reset: removing leftover subsystem $n"; do_cleanup "$n"; }
    done ;;

  setup)
    bt_parse_args "$@"
    [[ -n $HOSTNQN ]] || { err "setup: --hostnqn is required"; exit 1; }
    # DH-HMAC-CHAP: the host must authenticate with HOSTKEY; with CTRLKEY the target also proves
    # itself when the host asks (bidirectional). The secrets go to the target as they are (no keyring).
    hostopts=()
    if [[ -n $CTRLKEY && -z $HOSTKEY ]]; then err "setup: --ctrkey needs --hostkey"; exit 1; fi
    if [[ -n $HOSTKEY ]]; then
      is_secret "$HOSTKEY" || { err "setup: --hostkey is not a DHHC-1 secret"; exit 1; }
      hostopts+=(dhchap_key="\"$HOSTKEY\"")
    fi
    if [[ -n $CTRLKEY ]]; then
      is_secret "$CTRLKEY" || { err "setup: --ctrkey is not a DHHC-1 secret"; exit 1; }
      hostopts+=(dhchap_ctrlr_key="\"$CTRLKEY\"")
    fi
    # A leftover subsystem of the same name is replaced.
    if subsystems | grep -qxF "$SUBSYSNQN"; then do_cleanup "$SUBSYSNQN"; fi
    case $BACKEND in
      ram) backend=ram ;;
      file) backend="file:$(img_of "$SUBSYSNQN")" ;;
      *) err "FF_BACKEND must be ram or file"; exit 2 ;;
    esac
    serial=$(printf '%s' "$SUBSYSNQN" | sha1sum | cut -c1-20)
    nsopts=()
    [[ -n $SUBSYS_UUID ]] && nsopts=(namespace.uuid="$SUBSYS_UUID")
    if ! { rpc nvmf_create_subsystem nqn="$SUBSYSNQN" serial_number="\"$serial\"" model_number=ferrofabric_blktests \
             max_namespaces=32 >/dev/null &&
           rpc nvmf_subsystem_add_ns nqn="$SUBSYSNQN" namespace.nsid=1 namespace.backend="$backend" \
             namespace.size="${SIZE_MB}M" namespace.block_size="$BS" "${nsopts[@]}" >/dev/null &&
           rpc nvmf_subsystem_add_host nqn="$SUBSYSNQN" host="$HOSTNQN" "${hostopts[@]}" >/dev/null; }; then
      err "setup of $SUBSYSNQN failed (target log: $LOG)"
      do_cleanup "$SUBSYSNQN"
      exit 1
    fi ;;

  cleanup)
    bt_parse_args "$@"
    do_cleanup "$SUBSYSNQN" ;;

  *)
    err "usage: ferrofabric.sh start|stop|reset|config --show-...|setup --subsysnqn N ...|cleanup --subsysnqn N"
    exit 2 ;;
esac
