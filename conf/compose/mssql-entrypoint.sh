#!/bin/bash
# The SQL Server container's command (conf/compose.yaml), and its healthcheck
# with the argument "health".
#
# As the command: starts sqlservr, waits (bounded) until it answers sa, runs
# mssql-init.sql (XA procedures, login, databases) and then marks the
# container initialised; SQL Server stays the container's main process. If
# the initialisation fails, SQL Server is stopped and the container exits
# non-zero, so that `docker compose up --wait` fails instead of waiting.
#
# As the healthcheck: healthy once initialised and the xac login reaches its
# database and sees the XA procedures in master.
set -uo pipefail

DONE=/tmp/xac-init.done
USER_NAME=${XAC_MSSQL_USER:-xac}
USER_PASSWORD=${XAC_MSSQL_PASSWORD:?XAC_MSSQL_PASSWORD is not set}

# The tools moved to mssql-tools18 in newer images; -C trusts the server's
# self-signed certificate (sqlcmd 18 encrypts by default).
SQLCMD=/opt/mssql-tools18/bin/sqlcmd
[ -x "$SQLCMD" ] || SQLCMD=/opt/mssql-tools/bin/sqlcmd

log() { echo "xac-init: $*"; }

if [ "${1:-}" = health ]; then
    [ -f "$DONE" ] || exit 1
    out=$("$SQLCMD" -C -S 127.0.0.1 -U "$USER_NAME" -P "$USER_PASSWORD" -d xac_test -b -h -1 -W \
        -Q "SET NOCOUNT ON; SELECT CASE WHEN OBJECT_ID(N'master..xp_sqljdbc_xa_recover') IS NULL THEN 'noxa' ELSE 'ok' END") ||
        exit 1
    [ "$(echo "$out" | tr -d '[:space:]')" = ok ] || exit 1
    exit 0
fi

rm -f "$DONE"
/opt/mssql/bin/sqlservr &
pid=$!
trap 'kill -TERM "$pid" 2> /dev/null' TERM INT

ready=0
for _ in $(seq 1 180); do
    kill -0 "$pid" 2> /dev/null || break
    if "$SQLCMD" -C -S 127.0.0.1 -U sa -P "$MSSQL_SA_PASSWORD" -b -Q "SELECT 1" > /dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 1
done

if [ "$ready" = 1 ] &&
    "$SQLCMD" -C -S 127.0.0.1 -U sa -P "$MSSQL_SA_PASSWORD" -b -I \
        -v XAC_USER="$USER_NAME" XAC_PASSWORD="$USER_PASSWORD" -i /xac-init/mssql-init.sql; then
    touch "$DONE"
    log "XA procedures installed, login $USER_NAME and databases xac_test, xac_test2 ready"
else
    log "initialisation failed (SQL Server answered: $ready); stopping SQL Server" >&2
    kill -TERM "$pid" 2> /dev/null
    wait "$pid"
    exit 1
fi

# wait returns early when the trap runs; wait again for sqlservr's own exit.
wait "$pid"
rc=$?
if kill -0 "$pid" 2> /dev/null; then
    wait "$pid"
    rc=$?
fi
exit "$rc"
