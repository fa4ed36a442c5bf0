#!/usr/bin/env bash
# Runs the integration suite against real servers in containers: MySQL 8.4,
# PostgreSQL 16 and SQL Server 2022 with MSDTC and the XA procedures
# (conf/compose.yaml), instead of the throwaway MariaDB, PostgreSQL and TDS
# stand-in that scripts/test.sh starts.
#
#   scripts/test-containers.sh [--keep] [-R REGEX]
#
# NEEDS DOCKER (with the compose plugin, v2) on an x86-64 host with about 4 GB
# of free memory. IT WAS NOT RUN ON THE DEVELOPMENT MACHINES: Docker cannot
# run there. It is written for hosts where Docker exists; what ran where is
# in docs/sqlserver.md.
#
# It brings the servers up (docker compose up -d --wait: each is healthy once
# its users, databases and, for SQL Server, sp_sqljdbc_xa_install are done),
# exports their XAC_TEST_* addresses, runs `XAC_TEST_EXTERNAL=1
# scripts/test.sh` (which builds and runs ctest; tests that stop or kill a
# database themselves are skipped) and removes the containers and their
# volumes at the end, unless --keep. -R REGEX goes to test.sh. Host ports:
# XAC_TEST_MYSQL_PORT (23306), XAC_TEST_PG_PORT (25432), XAC_TEST_MSSQL_PORT
# (21433), all on 127.0.0.1. The exit status is test.sh's.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
compose_file=$root/conf/compose.yaml
project=xac-test

keep=0
test_args=()
while [ $# -gt 0 ]; do
    case $1 in
    --keep) keep=1 ;;
    -R)
        [ $# -ge 2 ] || { echo "test-containers.sh: -R needs a regular expression" >&2; exit 2; }
        test_args+=(-R "$2")
        shift
        ;;
    -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 0
        ;;
    *)
        echo "test-containers.sh: unknown argument $1 (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done

say() { echo "==> $*"; }

echo "test-containers.sh needs Docker; it was written for Docker hosts and was" \
    "not run on the development machines (see docs/sqlserver.md)."
command -v docker > /dev/null || { echo "test-containers.sh: docker is not installed" >&2; exit 2; }
docker compose version > /dev/null 2>&1 ||
    { echo "test-containers.sh: the docker compose plugin (v2) is not installed" >&2; exit 2; }

export XAC_TEST_MYSQL_PORT=${XAC_TEST_MYSQL_PORT:-23306}
export XAC_TEST_PG_PORT=${XAC_TEST_PG_PORT:-25432}
export XAC_TEST_MSSQL_PORT=${XAC_TEST_MSSQL_PORT:-21433}
dc() { docker compose -f "$compose_file" -p "$project" "$@"; }

# shellcheck disable=SC2317 # called from the EXIT trap
down() {
    if [ "$keep" = 1 ]; then
        say "kept the containers (remove them: docker compose -f $compose_file -p $project down -v)"
    else
        say "removing the containers and their volumes"
        dc down -v --remove-orphans > /dev/null 2>&1 || true
    fi
}
trap 'rc=$?; down; exit $rc' EXIT
trap 'exit 130' INT TERM

# SQL Server takes a minute or two on first start; pulling takes longer.
wait_args=(--wait)
if docker compose up --help 2> /dev/null | grep -- '--wait-timeout' > /dev/null; then
    wait_args+=(--wait-timeout 900)
fi
say "starting MySQL 8.4, PostgreSQL 16 and SQL Server 2022 ($compose_file)"
if ! dc up -d "${wait_args[@]}"; then
    echo "test-containers.sh: the servers did not all become healthy; their last log lines:" >&2
    dc ps -a >&2 || true
    dc logs --tail 40 >&2 || true
    exit 1
fi

# The users, passwords and databases conf/compose.yaml creates.
export XAC_TEST_MYSQL_HOST=127.0.0.1 XAC_TEST_MYSQL_USER=xac XAC_TEST_MYSQL_PASSWORD=xacpw
export XAC_TEST_MYSQL_DB=xac_test XAC_TEST_MYSQL_DB2=xac_test2
export XAC_TEST_PG_HOST=127.0.0.1 XAC_TEST_PG_USER=xac XAC_TEST_PG_PASSWORD=xacpw
export XAC_TEST_PG_DB=xac_test
export XAC_TEST_MSSQL_HOST=127.0.0.1 XAC_TEST_MSSQL_USER=xac XAC_TEST_MSSQL_PASSWORD=Xac_test_1
export XAC_TEST_MSSQL_DB=xac_test
export XAC_TEST_EXTERNAL=1

say "running scripts/test.sh against them"
set +e
"$root/scripts/test.sh" "${test_args[@]}"
rc=$?
set -e
exit "$rc"
