#!/usr/bin/env bash
# Builds xac and runs every test (unit, integration, crash) against throwaway
# MariaDB and PostgreSQL servers, from a fresh clone on Debian 12:
#
#   scripts/test.sh [--keep] [-R REGEX]
#
# --keep keeps the database directory (printed) for a look afterwards;
# -R REGEX runs only the ctest tests whose names match. Installs the missing
# Debian packages first (as root, or through sudo); XAC_BUILD_TYPE=Debug
# builds without optimisation (default RelWithDebInfo). The last line says
# "N passed, M failed"; the exit status is ctest's.
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
    "$XAC_ROOT/tests/fixtures/db.sh" stop "$dbdir" > /dev/null 2>&1 || true
    if [ "$keep" = 1 ]; then
        say "kept the database directory $dbdir (start it again: tests/fixtures/db.sh start $dbdir)"
    else
        rm -rf "$dbdir"
    fi
}
trap 'rc=$?; stop_dbs; exit $rc' EXIT
trap 'exit 130' INT TERM

say "starting MariaDB and PostgreSQL in $dbdir"
"$XAC_ROOT/tests/fixtures/db.sh" start "$dbdir"
. "$dbdir/env.sh"

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
stop_dbs
[ "$build_rc" = 0 ] || echo "==> the build failed; see the errors above" >&2
echo "$passed passed, $failed failed"
[ "$build_rc" = 0 ] || [ "$rc" != 0 ] || rc=1
exit "$rc"
