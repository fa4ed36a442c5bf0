#!/usr/bin/env bash
# The coordinator's own cost: xacd with two resources of driver "null" (they
# answer XA_OK at once and store nothing) and its decision journal on a real
# file system, so that every commit decision is fdatasync'ed. xac-bench runs
# the null2 workload (BEGIN, a statement on each resource, COMMIT: a
# two-phase commit with a durable COMMIT record) at 1, 8, 64 and 256 clients
# (closed loop: the curve), then the offered-load point: 10,000 transactions/s
# offered by 64 paced clients (xac-bench --rate; latency counted from each
# transaction's scheduled start, so that queueing shows in p95), and prints
# the tables; xacd's own count of commits is printed after them.
#
#   bench/run_null.sh [--build DIR] [--dir DIR] [--workers N] [--keep] [--any-fs]
#                     [--rate R] [--rate-clients N] [--no-rate]
#                     [-- XAC_BENCH_OPTIONS...]
#
# --build DIR   the build directory (default $XAC_BUILD_DIR, else ./build)
# --dir DIR     work directory for the config, journal, socket and log; must
#               not exist yet (default: a new one under the build directory)
# --workers N   xacd's worker threads (default 64)
# --keep        keep the work directory (default: removed when all went well)
# --any-fs      allow a journal on tmpfs/ramfs, where fdatasync costs nothing
#               (the smoke test only; the figures would flatter xacd)
# --rate R      the offered-load point's total rate (default 10000)
# --rate-clients N  its clients (default 64)
# --no-rate     run the curve only
# Options after -- go to xac-bench and override its defaults (see
# xac-bench --help): e.g. -- --seconds 10 --csv null.csv --plot null.png.
# They apply to both runs, except that the offered-load point has its own
# --clients and --rate, writes its CSV next to the curve's with "-rate"
# before .csv (null-rate.csv), and is not plotted.
# The exit status is xac-bench's (0 only when no transaction failed), or 1
# when xacd could not be started or stopped cleanly.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/xacd.sh
. "$root/bench/xacd.sh"
build=${XAC_BUILD_DIR:-$root/build}
dir=""
workers=64
keep=0
any_fs=0
rate=10000
rate_clients=64
bench_args=()
while [ $# -gt 0 ]; do
    case $1 in
    --build | --dir | --workers | --rate | --rate-clients)
        [ $# -ge 2 ] || { echo "run_null.sh: $1 needs a value" >&2; exit 2; }
        case $1 in
        --build) build=$2 ;;
        --dir) dir=$2 ;;
        --workers) workers=$2 ;;
        --rate) rate=$2 ;;
        --rate-clients) rate_clients=$2 ;;
        esac
        shift
        ;;
    --keep) keep=1 ;;
    --any-fs) any_fs=1 ;;
    --no-rate) rate="" ;;
    --)
        shift
        bench_args=("$@")
        break
        ;;
    -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 0
        ;;
    *)
        echo "run_null.sh: unknown argument $1 (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done
if ! [[ $workers =~ ^[0-9]+$ ]] || [ "$workers" -lt 1 ] || [ "$workers" -gt 1024 ]; then
    echo "run_null.sh: --workers $workers: expected 1..1024" >&2
    exit 2
fi
if [ -n "$rate" ] && ! [[ $rate =~ ^[0-9]+(\.[0-9]+)?$ && $rate_clients =~ ^[0-9]+$ ]]; then
    echo "run_null.sh: --rate $rate --rate-clients $rate_clients: expected numbers" >&2
    exit 2
fi
# The offered-load point's options: the curve's, with its own CSV name and
# no plot (one point is no curve).
rate_args=()
set -- ${bench_args[@]+"${bench_args[@]}"}
while [ $# -gt 0 ]; do
    case $1 in
    --csv)
        [ $# -ge 2 ] || break
        rate_args+=(--csv "${2%.csv}-rate.csv")
        shift
        ;;
    --plot) shift ;;
    *) rate_args+=("$1") ;;
    esac
    shift
done

xacd=$build/coordinator/xacd
bench=$build/bench/xac-bench
xacctl=$build/ctl/xacctl
for b in "$xacd" "$bench" "$xacctl"; do
    [ -x "$b" ] || { echo "run_null.sh: $b is missing: build first (cmake --build $build)" >&2; exit 1; }
done

if [ -z "$dir" ]; then
    dir=$(mktemp -d "$build/bench-null.XXXXXX")
else
    [ ! -e "$dir" ] || { echo "run_null.sh: $dir already exists; give a new directory" >&2; exit 2; }
    mkdir -p "$dir"
fi
dir=$(cd "$dir" && pwd)
fstype=$(stat -f -c %T "$dir")
case $fstype in
tmpfs | ramfs)
    if [ "$any_fs" = 0 ]; then
        echo "run_null.sh: $dir is on $fstype, where fdatasync does nothing: the figures would" \
            "not include a durable journal. Give --dir on a disk (or --any-fs for a smoke run)" >&2
        rm -rf "$dir"
        exit 2
    fi
    ;;
esac

sock=$dir/xacd.sock
log=$dir/xacd.log
token="bench-$RANDOM$RANDOM"
conf=$dir/xacd.conf
cat > "$conf" <<CONF
# Written by bench/run_null.sh: two null resources, a durable journal.
node_id = "bench-null";
listen = { unix = "$sock"; };
journal_dir = "$dir/journal";
workers = $workers;
limits = { max_sessions_per_client = 1024; };
log = { level = "warn"; file = "$log"; };
resources = (
  { name = "null_a"; driver = "null"; pool_size = 1024; },
  { name = "null_b"; driver = "null"; pool_size = 1024; }
);
clients = ( { name = "bench"; token = "$token"; } );
testing = { allow_null_driver = true; };
CONF
chmod 600 "$conf"

xacd_pid=""
status=1
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    if [ -n "$xacd_pid" ] && kill -0 "$xacd_pid" 2> /dev/null; then
        kill -9 "$xacd_pid" 2> /dev/null || true
        wait "$xacd_pid" 2> /dev/null || true
    fi
    if [ "$status" = 0 ] && [ "$keep" = 0 ]; then
        rm -rf "$dir"
    else
        echo "run_null.sh: work directory kept: $dir (xacd log: $log)" >&2
    fi
}
trap 'cleanup' EXIT
trap 'exit 130' INT TERM

bench_xacd_start "$xacd" "$conf" "$sock" "$log" || exit 1

echo "xacd $("$xacd" --version 2>&1 | head -1) pid $xacd_pid: 2 null resources, workers $workers," \
    "journal $dir/journal ($fstype)"
echo "machine: $(nproc) CPUs, $(uptime | sed 's/.*load/load/')"
set +e
XAC_ADDR="unix:$sock" XAC_CLIENT=bench XAC_TOKEN=$token \
    "$bench" --mode xac --workload null2 ${bench_args[@]+"${bench_args[@]}"}
bench_rc=$?
if [ -n "$rate" ]; then
    echo "offered load: $rate transactions/s from $rate_clients paced clients" \
        "(latency from each transaction's scheduled start)"
    XAC_ADDR="unix:$sock" XAC_CLIENT=bench XAC_TOKEN=$token \
        "$bench" --mode xac --workload null2 ${rate_args[@]+"${rate_args[@]}"} \
        --clients "$rate_clients" --rate "$rate"
    rc=$?
    [ "$bench_rc" != 0 ] || bench_rc=$rc
fi
set -e
echo "xacd's own count (xacctl status):"
"$xacctl" -c "$conf" status 2>&1 | grep -Ei 'committed|rolled|in flight|live' | sed 's/^/  /' || true

bench_xacd_stop "$log" || exit 1
status=$bench_rc
exit "$status"
