#!/usr/bin/env bash
# The full benchmark, the documented command behind docs/performance.md's
# figures (not a test: scripts/test.sh runs only xac-bench's smoke run). In a
# new work directory it starts throwaway MariaDB and PostgreSQL servers tuned
# as a production server would be (bench/db_tune.sh; the commit path stays
# durable), starts xacd with resources my (mysql driver), pg (odbc,
# PostgreSQL) and my2 (mysql driver, a second MariaDB database) and its
# journal on the work directory's file system (every decision fdatasync'ed),
# runs xac-bench with every mode at every point, interleaved, and writes:
#   results.txt   the tables xac-bench printed (also on stdout), ratios included
#   results.csv   one row per point (columns: xac-bench --help)
#   results.png   throughput and p99 against clients, one row per workload
#                 (when gnuplot is installed; Debian: gnuplot-nox)
#   db-settings.txt  the servers' settings (bench/db_tune.sh show)
#   machine.txt   CPUs, CPU model, memory, kernel, the work directory's disk
#                 and file system, load
#   xacd.conf, xacd.log
# Then it stops xacd and the servers and removes their data and the journal
# (unless --keep). With the defaults it takes about 15 minutes.
#
#   bench/run_bench.sh [--build DIR] [--dir DIR] [--modes LIST] [--workloads LIST]
#                      [--clients LIST] [--seconds S] [--accounts N] [--workers N]
#                      [--settle S] [--keep] [--any-fs] [-- XAC_BENCH_OPTIONS...]
#
# --build DIR       the build directory (default $XAC_BUILD_DIR, else ./build)
# --dir DIR         the work directory; must not exist yet (default: a new
#                   bench-run.XXXXXX under the build directory)
# --modes LIST      default direct,xac,local
# --workloads LIST  default transfer2,one,transfer3,readmostly
# --clients LIST    default 1,2,4,8,16,32
# --seconds S       measured seconds per point (default 10)
# --accounts N      rows per accounts table (default: xac-bench's, 10000)
# --workers N       xacd's worker threads (default 64)
# --settle S        before the measured run, every mode runs transfer2 and one
#                   at 8 clients for S seconds each, not reported, so that the
#                   fresh servers' start-up writes stay out of the first points
#                   (default 10; 0: none)
# --keep            keep the databases' data directories, the journal and the
#                   servers' logs in the work directory (they are stopped either way)
# --any-fs          allow a work directory on tmpfs, where fdatasync costs
#                   nothing (the figures would flatter every mode)
# Options after -- go to xac-bench (e.g. -- --warmup 2 --rate 500).
# Ports: XAC_TEST_MYSQL_PORT and XAC_TEST_PG_PORT when set, else the first
# free ones from 13306 and 15432 (tests/fixtures/db.sh).
# Exit status: xac-bench's (0 only when no transaction failed and every
# money check held), 1 when a server or xacd could not be started or stopped
# cleanly, 2 for a usage error.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/xacd.sh
. "$root/bench/xacd.sh"
build=${XAC_BUILD_DIR:-$root/build}
dir=""
modes=direct,xac,local
workloads=transfer2,one,transfer3,readmostly
clients=1,2,4,8,16,32
seconds=10
accounts=""
workers=64
settle=10
keep=0
any_fs=0
bench_args=()
die() { echo "run_bench.sh: $*" >&2; exit 1; }
usage_error() { echo "run_bench.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
    --build | --dir | --modes | --workloads | --clients | --seconds | --accounts | --workers | --settle)
        [ $# -ge 2 ] || usage_error "$1 needs a value"
        case $1 in
        --build) build=$2 ;;
        --dir) dir=$2 ;;
        --modes) modes=$2 ;;
        --workloads) workloads=$2 ;;
        --clients) clients=$2 ;;
        --seconds) seconds=$2 ;;
        --accounts) accounts=$2 ;;
        --workers) workers=$2 ;;
        --settle) settle=$2 ;;
        esac
        shift
        ;;
    --keep) keep=1 ;;
    --any-fs) any_fs=1 ;;
    --)
        shift
        bench_args=("$@")
        break
        ;;
    -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 0
        ;;
    *) usage_error "unknown argument $1 (try --help)" ;;
    esac
    shift
done
[[ $clients =~ ^[0-9]+(,[0-9]+)*$ ]] || usage_error "--clients $clients: expected a list such as 1,8,32"
if ! [[ $workers =~ ^[0-9]+$ ]] || [ "$workers" -lt 1 ] || [ "$workers" -gt 1024 ]; then
    usage_error "--workers $workers: expected 1..1024"
fi
[[ $settle =~ ^[0-9]+$ ]] || usage_error "--settle needs whole seconds (0: none), not '$settle'"
[ -z "$accounts" ] || bench_args=(--accounts "$accounts" ${bench_args[@]+"${bench_args[@]}"})

xacd=$build/coordinator/xacd
bench=$build/bench/xac-bench
for b in "$xacd" "$bench"; do
    [ -x "$b" ] || die "$b is missing: build first (cmake --build $build)"
done
# A usage error in the xac-bench options is found before any server starts.
XAC_CLIENT=bench "$bench" --dry-run --modes "$modes" --workloads "$workloads" --clients "$clients" \
    --seconds "$seconds" ${bench_args[@]+"${bench_args[@]}"} > /dev/null || usage_error "xac-bench refused the options (above)"
plot=()
maxc=$(tr ',' '\n' <<< "$clients" | sort -n | tail -1)

if [ -z "$dir" ]; then
    dir=$(mktemp -d "$build/bench-run.XXXXXX")
else
    [ ! -e "$dir" ] || usage_error "$dir already exists; give a new directory"
    mkdir -p "$dir"
fi
# mktemp makes it 0700: the servers' own users (postgres) must pass through
# it to their directories. The secrets in it are 0600 each.
chmod 755 "$dir"
dir=$(cd "$dir" && pwd)
fstype=$(stat -f -c %T "$dir")
case $fstype in
tmpfs | ramfs)
    if [ "$any_fs" = 0 ]; then
        rmdir "$dir" 2> /dev/null || true
        usage_error "$dir is on $fstype, where fdatasync does nothing. Give --dir on a disk (or --any-fs)"
    fi
    ;;
esac

xacd_pid=""
db_started=0
status=1
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    set +e
    if [ -n "$xacd_pid" ] && kill -0 "$xacd_pid" 2> /dev/null; then
        kill -9 "$xacd_pid" 2> /dev/null
        wait "$xacd_pid" 2> /dev/null
    fi
    if [ "$db_started" = 1 ]; then
        bash "$root/bench/db_tune.sh" stop "$dir/db" > "$dir/db-stop.log" 2>&1 ||
            echo "run_bench.sh: stopping the servers failed (see $dir/db-stop.log)" >&2
    fi
    if [ "$keep" = 0 ]; then
        rm -rf "$dir/db" "$dir/journal"
    fi
    echo "run_bench.sh: results in $dir" >&2
}
trap 'cleanup' EXIT
trap 'exit 130' INT TERM

echo "== machine"
{
    echo "date:       $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpus:       $(nproc) online"
    echo "cpu model:  $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "memory:     $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "kernel:     $(uname -srm)"
    echo "disk:       $(findmnt -n -o SOURCE,FSTYPE,OPTIONS -T "$dir" | tr -s ' ')"
    echo "load:       $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "xacd:       $("$xacd" --version 2>&1 | head -1), workers $workers"
    echo "git:        $(git -C "$root" describe --always --dirty 2> /dev/null || echo unknown)"
} | tee "$dir/machine.txt"

echo "== databases (bench/db_tune.sh start $dir/db)"
db_started=1
bash "$root/bench/db_tune.sh" start "$dir/db" > "$dir/db-start.log" 2>&1 || {
    cat "$dir/db-start.log" >&2
    die "the tuned servers did not start"
}
bash "$root/bench/db_tune.sh" show "$dir/db" | tee "$dir/db-settings.txt"
# shellcheck disable=SC1091 # written by db.sh
. "$dir/db/env.sh"

sock=$dir/xacd.sock
log=$dir/xacd.log
conf=$dir/xacd.conf
token="bench-$RANDOM$RANDOM"
pool=$((maxc + 8))
printf '%s\n' "$XAC_TEST_MYSQL_PASSWORD" > "$dir/mysql.password"
printf '%s\n' "$XAC_TEST_PG_PASSWORD" > "$dir/pg.password"
chmod 600 "$dir/mysql.password" "$dir/pg.password"
cat > "$conf" <<CONF
# Written by bench/run_bench.sh: the databases of xac-bench's workloads,
# under the names it uses; a durable journal.
node_id = "bench";
listen = { unix = "$sock"; };
journal_dir = "$dir/journal";
workers = $workers;
limits = { max_sessions_per_client = 1024; };
log = { level = "warn"; file = "$log"; };
resources = (
  { name = "my"; driver = "mysql"; host = "$XAC_TEST_MYSQL_HOST"; port = $XAC_TEST_MYSQL_PORT;
    user = "$XAC_TEST_MYSQL_USER"; password_file = "$dir/mysql.password";
    database = "$XAC_TEST_MYSQL_DB"; pool_size = $pool; },
  { name = "pg"; driver = "odbc"; dialect = "postgresql"; odbc_driver = "PostgreSQL Unicode";
    host = "$XAC_TEST_PG_HOST"; port = $XAC_TEST_PG_PORT; user = "$XAC_TEST_PG_USER";
    password_file = "$dir/pg.password"; database = "$XAC_TEST_PG_DB"; pool_size = $pool; },
  { name = "my2"; driver = "mysql"; host = "$XAC_TEST_MYSQL_HOST"; port = $XAC_TEST_MYSQL_PORT;
    user = "$XAC_TEST_MYSQL_USER"; password_file = "$dir/mysql.password";
    database = "$XAC_TEST_MYSQL_DB2"; pool_size = $pool; }
);
clients = ( { name = "bench"; token = "$token"; } );
CONF
chmod 600 "$conf"

bench_xacd_start "$xacd" "$conf" "$sock" "$log" || die "xacd did not start"
echo "== xacd pid $xacd_pid, journal $dir/journal ($fstype), pool_size $pool"

if command -v gnuplot > /dev/null; then
    plot=(--plot "$dir/results.png")
else
    echo "run_bench.sh: gnuplot is not installed: no results.png (apt-get install gnuplot-nox)" >&2
fi
# Fresh servers are busy for a while after start (redo log and WAL files
# being written, pages being read into the buffer pool); a settling run,
# not reported, keeps that out of the first points.
if [ "$settle" != 0 ]; then
    echo "== settling: every mode on transfer2 and one at 8 clients, ${settle} s each (not reported)"
    XAC_ADDR="unix:$sock" XAC_CLIENT=bench XAC_TOKEN=$token \
        "$bench" --modes "$modes" --workloads transfer2,one --clients 8 --seconds "$settle" \
        --warmup 0 > "$dir/settle.txt" 2>&1 || {
        cat "$dir/settle.txt" >&2
        die "the settling run failed; its output is above"
    }
fi
echo "== xac-bench --modes $modes --workloads $workloads --clients $clients --seconds $seconds" \
    "${bench_args[*]}"
set +e
XAC_ADDR="unix:$sock" XAC_CLIENT=bench XAC_TOKEN=$token \
    "$bench" --modes "$modes" --workloads "$workloads" --clients "$clients" --seconds "$seconds" \
    --csv "$dir/results.csv" ${plot[@]+"${plot[@]}"} ${bench_args[@]+"${bench_args[@]}"} 2>&1 |
    tee "$dir/results.txt"
bench_rc=${PIPESTATUS[0]}
set -e

bench_xacd_stop "$log" || die "xacd did not stop cleanly"
status=$bench_rc
exit "$status"
