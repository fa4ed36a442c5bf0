#!/usr/bin/env bash
# Builds xac and runs every test (unit, integration, crash) against throwaway
# MariaDB and PostgreSQL servers and the SQL Server stand-in (tests/tds/),
# from a fresh clone on Debian 12:
#
#   scripts/test.sh [--keep] [-R REGEX]
#
# --keep keeps the database directory (printed) for a look afterwards;
# -R REGEX runs only the ctest tests whose names match. Installs the missing
# Debian packages first (as root, or through sudo); XAC_BUILD_TYPE=Debug
# builds without optimisation (default RelWithDebInfo). The last line says
# "N passed, M failed" (and ", K skipped" when tests skipped); the exit
# status is ctest's.
#
# External servers: with XAC_TEST_EXTERNAL=1 it starts no database and runs
# the same tests against the servers the environment names, all over TCP
# (scripts/test-containers.sh sets this up with Docker):
#   XAC_TEST_MYSQL_HOST PORT USER PASSWORD DB DB2   (MySQL 8 or MariaDB)
#   XAC_TEST_PG_HOST PORT USER PASSWORD DB          (PostgreSQL)
#   XAC_TEST_MSSQL_HOST PORT USER PASSWORD DB       (SQL Server, XA procedures installed)
# (each as XAC_TEST_MYSQL_HOST, XAC_TEST_MYSQL_PORT, ...). The users must be
# allowed what tests/fixtures/db.sh grants its own (conf/compose/ shows it).
# Tests that stop, kill or restart a database themselves are skipped.
set -euo pipefail

keep=0
ctest_args=()
while [ $# -gt 0 ]; do
    case $1 in
    --keep) keep=1 ;;
    -R)
        [ $# -ge 2 ] || { echo "test.sh: -R needs a regular expression" >&2; exit 2; }
        ctest_args+=(-R "$2")
        shift
        ;;
    -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 0
        ;;
    *)
        echo "test.sh: unknown argument $1 (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done

. "$(dirname "$0")/setup.sh"
cd "$XAC_ROOT"

external=0
[ "${XAC_TEST_EXTERNAL:-0}" != 1 ] || external=1
if [ "$external" = 1 ]; then
    missing=""
    for db in MYSQL PG MSSQL; do
        for v in HOST PORT USER PASSWORD DB; do
            [ -n "$(printenv "XAC_TEST_${db}_$v" || true)" ] || missing="$missing XAC_TEST_${db}_$v"
        done
    done
    [ -n "${XAC_TEST_MYSQL_DB2:-}" ] || missing="$missing XAC_TEST_MYSQL_DB2"
    if [ -n "$missing" ]; then
        echo "test.sh: XAC_TEST_EXTERNAL=1 needs the servers' addresses; missing:$missing" >&2
        exit 2
    fi
    # No socket, no fixture directory, no TDS stand-in: what would point at
    # local throwaway servers must not leak in from an old env.sh.
    unset XAC_TEST_DIR XAC_TEST_MYSQL_SOCKET XAC_TEST_PG_SOCKETDIR
    for v in $(compgen -v XAC_TEST_TDS_ || true); do unset "$v"; done
    export XAC_TEST_EXTERNAL
    say "external servers: MySQL $XAC_TEST_MYSQL_HOST:$XAC_TEST_MYSQL_PORT," \
        "PostgreSQL $XAC_TEST_PG_HOST:$XAC_TEST_PG_PORT, SQL Server $XAC_TEST_MSSQL_HOST:$XAC_TEST_MSSQL_PORT" \
        "(tests that stop or kill a server are skipped)"
    [ "$keep" = 0 ] || say "--keep has nothing to keep with external servers"
fi

xac_install_deps
build_rc=0
XAC_KEEP_GOING=1 xac_build || build_rc=$?
if [ "$build_rc" != 0 ]; then
    echo "==> THE BUILD FAILED (errors above); running the tests anyway: whatever did not build fails" >&2
fi

dbdir=$(mktemp -d /tmp/xac-test-db.XXXXXX)
stopped=0
stop_dbs() {
    [ "$stopped" = 0 ] || return 0
    stopped=1
    if [ "$external" = 1 ]; then
        rm -rf "$dbdir"
        return 0
    fi
    "$XAC_ROOT/tests/fixtures/db.sh" stop "$dbdir" > /dev/null 2>&1 || true
    if [ "$keep" = 1 ]; then
        say "kept the database directory $dbdir (start it again: tests/fixtures/db.sh start $dbdir)"
    else
        rm -rf "$dbdir"
    fi
}
trap 'rc=$?; stop_dbs; exit $rc' EXIT
trap 'exit 130' INT TERM

if [ "$external" = 0 ]; then
    say "starting MariaDB, PostgreSQL and the SQL Server stand-in in $dbdir"
    "$XAC_ROOT/tests/fixtures/db.sh" start "$dbdir"
    . "$dbdir/env.sh"
fi

say "running ctest"
log=$dbdir/ctest.log
set +e
(cd "$XAC_ROOT/build" && ctest --output-on-failure "${ctest_args[@]}") 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

# "95% tests passed, 1 tests failed out of 20"
summary=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1 || true)
if [ -n "$summary" ]; then
    failed=$(echo "$summary" | sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/')
    total=$(echo "$summary" | sed -E 's/.*out of ([0-9]+).*/\1/')
    passed=$((total - failed))
else
    passed=0
    failed=0
    [ "$rc" = 0 ] || failed=1
fi
# ctest counts a skipped test (exit 77, e.g. it_need_local_servers) as not
# failed and lists it under "did not run" as "(Skipped)".
skipped=$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)' "$log" || true)
passed=$((passed - skipped))
[ "$passed" -ge 0 ] || passed=0
stop_dbs
[ "$build_rc" = 0 ] || echo "==> the build failed; see the errors above" >&2
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$build_rc" = 0 ] || [ "$rc" != 0 ] || rc=1
exit "$rc"
