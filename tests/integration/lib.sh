# shellcheck shell=bash
# Shared by every tests/integration/test_*.sh: checks the environment, gives
# each test its own temp dir, xacd config, node id and tables, starts and stops
# xacd, and offers SQL and assertion helpers. A test sources it, calls
# it_setup, and everything it started is cleaned up on exit, pass or fail.
# Expects the env that ctest sets (XAC_BUILD_DIR) and tests/fixtures/db.sh's
# env.sh (XAC_TEST_*); a test that needs no database calls it_setup_nodb
# instead and needs only XAC_BUILD_DIR. With XAC_TEST_EXTERNAL=1 the servers
# are someone else's (scripts/test-containers.sh): everything goes over TCP to
# the XAC_TEST_* addresses, there is no socket and no XAC_TEST_DIR, and a test
# that stops or kills a server itself skips (it_need_local_servers).

set -euo pipefail

IT_NAME=$(basename "${0%.sh}")
IT_XACD_PID=""
IT_DIR=""
IT_STATUS=1 # becomes 0 when the test reaches it_pass
IT_MY_SESSIONS=""

it_log() { echo "[$IT_NAME] $*"; }

fail() {
    echo "[$IT_NAME] FAIL: $*" >&2
    exit 1
}

# ------------------------------------------------------------ environment

it_check_env() {
    local v missing="" sock=XAC_TEST_MYSQL_SOCKET
    [ "${XAC_TEST_EXTERNAL:-0}" != 1 ] || sock=""
    for v in XAC_BUILD_DIR XAC_TEST_MYSQL_HOST XAC_TEST_MYSQL_PORT $sock \
        XAC_TEST_MYSQL_USER XAC_TEST_MYSQL_PASSWORD XAC_TEST_MYSQL_DB XAC_TEST_MYSQL_DB2 \
        XAC_TEST_PG_HOST XAC_TEST_PG_PORT XAC_TEST_PG_USER XAC_TEST_PG_PASSWORD XAC_TEST_PG_DB; do
        [ -n "${!v:-}" ] || missing="$missing $v"
    done
    [ -z "$missing" ] || fail "missing environment:$missing. Run the tests through scripts/test.sh, or
start the servers with tests/fixtures/db.sh start DIR, '. DIR/env.sh', and run ctest in the build dir."
    XAC_SOURCE_DIR=${XAC_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
    XACD_BIN=$XAC_BUILD_DIR/coordinator/xacd
    XAC_BIN=$XAC_BUILD_DIR/client/xac
    XACCTL_BIN=$XAC_BUILD_DIR/ctl/xacctl
    RAWFRAME_BIN=$XAC_BUILD_DIR/tests/prog_rawframe
    local b
    for b in "$XACD_BIN" "$XAC_BIN"; do
        [ -x "$b" ] || fail "$b is missing: build the project first (cmake --build $XAC_BUILD_DIR)"
    done
}

# -------------------------------------------------------- setup, cleanup

# it_setup: temp dir, node id, secrets and the default config ($IT_CONF).
it_setup() {
    it_check_env
    IT_DIR=$(mktemp -d "/tmp/xac-it-$IT_NAME.XXXXXX")
    trap it_cleanup EXIT
    # A node id per test, so that recovery in one test never touches the
    # branches of another ("it-" + name without "test_", at most 24 chars).
    IT_NODE=$(printf 'it-%s' "${IT_NAME#test_}" | tr '_' '-' | cut -c1-24)
    IT_SOCK=$IT_DIR/xacd.sock
    IT_LOG=$IT_DIR/xacd.log
    IT_JOURNAL=$IT_DIR/journal
    IT_TOKEN="tok-$RANDOM$RANDOM"
    : > "$IT_LOG"
    printf '%s\n' "$XAC_TEST_MYSQL_PASSWORD" > "$IT_DIR/mysql.password"
    printf '%s\n' "$XAC_TEST_PG_PASSWORD" > "$IT_DIR/pg.password"
    chmod 600 "$IT_DIR/mysql.password" "$IT_DIR/pg.password"
    IT_CONF=$IT_DIR/xacd.conf
    it_write_config "$IT_CONF"
    export XAC_ADDR="unix:$IT_SOCK" XAC_CLIENT=app XAC_TOKEN=$IT_TOKEN
    it_log "temp dir $IT_DIR, node $IT_NODE"
}

# it_write_config FILE [RESOURCE...]: the standard config with these
# resources (default: all three):
#   bank_a  mysql driver, XAC_TEST_MYSQL_DB
#   bank_b  odbc, postgresql dialect, XAC_TEST_PG_DB
#   bank_c  odbc, mysql dialect, XAC_TEST_MYSQL_DB2
#   bank_d  mysql driver, XAC_TEST_MYSQL_DB2 (only when named)
it_write_config() {
    local file=$1 r sep=""
    shift
    [ $# -gt 0 ] || set -- bank_a bank_b bank_c
    {
        cat <<CONF
node_id = "$IT_NODE";
listen = { unix = "$IT_SOCK"; };
journal_dir = "$IT_JOURNAL";
timeouts = { transaction_ms = 60000; prepare_ms = 20000; connect_ms = 5000; pool_wait_ms = 5000; };
workers = 4;
log = { level = "${IT_LOG_LEVEL:-debug}"; };
resources = (
CONF
        for r in "$@"; do
            printf '%s' "$sep"
            it_resource_conf "$r"
            sep=","
        done
        cat <<CONF
);
clients = ( { name = "app"; token = "$IT_TOKEN"; } );
testing = { fault_injection = true; };
CONF
    } > "$file"
}

it_resource_conf() {
    case $1 in
    bank_a)
        cat <<CONF
  {
    name = "bank_a";
    driver = "mysql";
    host = "$XAC_TEST_MYSQL_HOST";
    port = $XAC_TEST_MYSQL_PORT;
    user = "$XAC_TEST_MYSQL_USER";
    password_file = "$IT_DIR/mysql.password";
    database = "$XAC_TEST_MYSQL_DB";
    pool_size = 4;
  }
CONF
        ;;
    bank_b)
        cat <<CONF
  {
    name = "bank_b";
    driver = "odbc";
    dialect = "postgresql";
    odbc_driver = "PostgreSQL Unicode";
    host = "$XAC_TEST_PG_HOST";
    port = $XAC_TEST_PG_PORT;
    user = "$XAC_TEST_PG_USER";
    password_file = "$IT_DIR/pg.password";
    database = "$XAC_TEST_PG_DB";
    pool_size = 4;
  }
CONF
        ;;
    bank_c)
        cat <<CONF
  {
    name = "bank_c";
    driver = "odbc";
    dialect = "mysql";
    odbc_driver = "MariaDB Unicode";
    host = "$XAC_TEST_MYSQL_HOST";
    port = $XAC_TEST_MYSQL_PORT;
    user = "$XAC_TEST_MYSQL_USER";
    password = "$XAC_TEST_MYSQL_PASSWORD";
    database = "$XAC_TEST_MYSQL_DB2";
    pool_size = 4;
  }
CONF
        ;;
    bank_d)
        cat <<CONF
  {
    name = "bank_d";
    driver = "mysql";
    host = "$XAC_TEST_MYSQL_HOST";
    port = $XAC_TEST_MYSQL_PORT;
    user = "$XAC_TEST_MYSQL_USER";
    password_file = "$IT_DIR/mysql.password";
    database = "$XAC_TEST_MYSQL_DB2";
    pool_size = 4;
  }
CONF
        ;;
    bank_m | bank_m2)
        # SQL Server (the TDS stand-in here, or a real one): a last resource.
        # bank_m2 is a second one on the same server, for the one-per-
        # transaction rule.
        cat <<CONF
  {
    name = "$1";
    driver = "mssql";
    host = "$XAC_TEST_MSSQL_HOST";
    port = $XAC_TEST_MSSQL_PORT;
    user = "$XAC_TEST_MSSQL_USER";
    password = "$XAC_TEST_MSSQL_PASSWORD";
    database = "$XAC_TEST_MSSQL_DB";
    marker_table = "xac_marker_$1";
    pool_size = 4;
  }
CONF
        ;;
    *) fail "it_write_config: unknown resource $1" ;;
    esac
}

it_cleanup() {
    local rc=$?
    [ "$IT_STATUS" = 0 ] || [ "$rc" != 0 ] || rc=1
    set +e
    if [ -n "$IT_XACD_PID" ] && kill -0 "$IT_XACD_PID" 2> /dev/null; then
        kill -9 "$IT_XACD_PID" 2> /dev/null
        wait "$IT_XACD_PID" 2> /dev/null
    fi
    IT_XACD_PID=""
    # Prepared branches hold locks that would block the next test's DDL.
    [ -n "${IT_NODE:-}" ] && it_purge_prepared > /dev/null 2>&1
    if declare -F it_drop_tables > /dev/null; then it_drop_tables > /dev/null 2>&1; fi
    if [ "$rc" != 0 ] && [ -s "${IT_LOG:-}" ]; then
        echo "---- last 60 lines of $IT_LOG" >&2
        tail -60 "$IT_LOG" >&2
    fi
    if [ -n "$IT_DIR" ] && [ -z "${XAC_KEEP_TMP:-}" ]; then
        rm -rf "$IT_DIR"
    elif [ -n "$IT_DIR" ]; then
        echo "[$IT_NAME] kept $IT_DIR" >&2
    fi
    if [ "$rc" = 0 ]; then echo "[$IT_NAME] PASS"; fi
    exit "$rc"
}

it_pass() { IT_STATUS=0; }

# it_need_local_servers [WHY]: for a test that stops, kills, pauses or
# restarts a database itself (tests/fixtures/db.sh), or reaches into the TDS
# stand-in's store. Against external servers (XAC_TEST_EXTERNAL=1) it cannot,
# so it skips: exit 77, which ctest counts as skipped (SKIP_RETURN_CODE).
# Call it before it_setup.
it_need_local_servers() {
    [ "${XAC_TEST_EXTERNAL:-0}" = 1 ] || return 0
    echo "[$IT_NAME] skipped: needs local servers${1:+ ($1)}; XAC_TEST_EXTERNAL=1 runs against external ones"
    exit 77
}

# it_setup_nodb PROGRAM: it_setup for a test that drives tests/PROGRAM alone
# and needs no database (nor the XAC_TEST_* env): checks the build, sets
# IT_PROG and a temp dir IT_DIR, and traps it_cleanup, which removes IT_DIR
# (kept with XAC_KEEP_TMP=1) and fails the test unless it reached it_pass.
it_setup_nodb() {
    [ -n "${XAC_BUILD_DIR:-}" ] || fail "XAC_BUILD_DIR is not set (run through ctest or scripts/test.sh)"
    IT_PROG=$XAC_BUILD_DIR/tests/$1
    [ -x "$IT_PROG" ] || fail "$IT_PROG is missing: build the project first (cmake --build $XAC_BUILD_DIR)"
    IT_DIR=$(mktemp -d "/tmp/xac-it-$IT_NAME.XXXXXX")
    trap it_cleanup EXIT
}

# ------------------------------------------------------------------ xacd

# start_xacd [VAR=VALUE...]: starts xacd with the config and extra env, waits
# (bounded) for the "xacd ready" line of this run.
start_xacd() {
    local conf=${IT_START_CONF:-$IT_CONF}
    local before
    before=$(grep -c 'xacd ready' "$IT_LOG" || true)
    IT_MY_SESSIONS=$(my_session_ids || true)
    echo "==== start_xacd $* ($(date -u +%T))" >> "$IT_LOG"
    env "$@" "$XACD_BIN" -c "$conf" >> "$IT_LOG" 2>&1 &
    IT_XACD_PID=$!
    local i
    for i in $(seq 1 300); do
        if [ "$(grep -c 'xacd ready' "$IT_LOG" || true)" -gt "$before" ]; then
            return 0
        fi
        if ! kill -0 "$IT_XACD_PID" 2> /dev/null; then
            local st=0
            wait "$IT_XACD_PID" || st=$?
            IT_XACD_PID=""
            fail "xacd exited with status $st before it was ready (log: see below)"
        fi
        sleep 0.1
    done
    fail "xacd did not log 'xacd ready' within 30 s"
}

# stop_xacd: SIGTERM and wait for a clean exit (status 0).
stop_xacd() {
    [ -n "$IT_XACD_PID" ] || return 0
    kill -TERM "$IT_XACD_PID" 2> /dev/null || true
    local i st=0
    for i in $(seq 1 300); do
        kill -0 "$IT_XACD_PID" 2> /dev/null || break
        sleep 0.1
    done
    if kill -0 "$IT_XACD_PID" 2> /dev/null; then
        kill -9 "$IT_XACD_PID"
        wait "$IT_XACD_PID" 2> /dev/null || true
        IT_XACD_PID=""
        fail "xacd did not stop within 30 s of SIGTERM"
    fi
    wait "$IT_XACD_PID" || st=$?
    IT_XACD_PID=""
    [ "$st" = 0 ] || fail "xacd exited with status $st after SIGTERM, expected 0"
}

# kill_xacd: SIGKILL, as a crash.
kill_xacd() {
    [ -n "$IT_XACD_PID" ] || return 0
    kill -9 "$IT_XACD_PID" 2> /dev/null || true
    wait "$IT_XACD_PID" 2> /dev/null || true
    IT_XACD_PID=""
}

xacd_alive() { [ -n "$IT_XACD_PID" ] && kill -0 "$IT_XACD_PID" 2> /dev/null; }

# wait_xacd_crash: waits (bounded) for xacd to die and checks that it died of
# SIGKILL, which is what a crash point does.
wait_xacd_crash() {
    [ -n "$IT_XACD_PID" ] || fail "wait_xacd_crash: xacd is not running"
    local i st=0
    for i in $(seq 1 300); do
        kill -0 "$IT_XACD_PID" 2> /dev/null || break
        sleep 0.1
    done
    if kill -0 "$IT_XACD_PID" 2> /dev/null; then
        kill_xacd
        fail "xacd is still running 30 s after its crash point should have fired"
    fi
    wait "$IT_XACD_PID" || st=$?
    IT_XACD_PID=""
    [ "$st" = 137 ] || fail "xacd exited with status $st, expected 137 (killed by SIGKILL at the crash point)"
}

# ------------------------------------------------------------- xac client

# run_xac ARGS...: runs the xac CLI; sets XAC_RC, XAC_OUT (stdout+stderr) and
# XAC_LAST (its last line). Never trips set -e.
run_xac() {
    XAC_RC=0
    XAC_OUT=$("$XAC_BIN" "$@" 2>&1) || XAC_RC=$?
    XAC_LAST=$(printf '%s\n' "$XAC_OUT" | tail -1)
    printf '%s\n' "$XAC_OUT" | sed "s/^/[$IT_NAME]   xac: /"
}

# The gtrid of the last "committed GTRID" / "rolled back GTRID..." line.
xac_gtrid() {
    printf '%s\n' "$XAC_LAST" | sed -n -e 's/^committed \([^ :]*\).*/\1/p' \
        -e 's/^rolled back \([^ :]*\).*/\1/p'
}

expect_committed() {
    [ "$XAC_RC" = 0 ] || fail "${1:-xac}: expected exit 0 (committed), got $XAC_RC; output: $XAC_OUT"
    case $XAC_LAST in
    "committed $IT_NODE."*) ;;
    *) fail "${1:-xac}: expected last line 'committed $IT_NODE.…', got '$XAC_LAST'" ;;
    esac
}

expect_rolled_back() { # [RESOURCE] [WHAT]
    [ "$XAC_RC" = 1 ] || fail "${2:-xac}: expected exit 1 (rolled back), got $XAC_RC; output: $XAC_OUT"
    case $XAC_LAST in
    "rolled back $IT_NODE."*) ;;
    *) fail "${2:-xac}: expected last line 'rolled back $IT_NODE.…', got '$XAC_LAST'" ;;
    esac
    if [ -n "${1:-}" ]; then
        case $XAC_LAST in
        *": $1: "*) ;;
        *) fail "${2:-xac}: expected the refusing resource '$1' in '$XAC_LAST'" ;;
        esac
    fi
}

# ------------------------------------------------------------ raw frames

# Frames written by hand (prog_rawframe), for replies that libxac would hide
# or input it would never send. it_rawframe_setup, after it_setup: checks the
# program and sets the HELLO (with this test's token), BEGIN and COMMIT frames.
# shellcheck disable=SC2034 # the frames are for the tests that source this
it_rawframe_setup() {
    [ -x "$RAWFRAME_BIN" ] || fail "$RAWFRAME_BIN is missing: build the prog_rawframe target"
    HELLO=$(frame 01 "$(hx_u16 1)$(hx_str app)$(hx_str "$IT_TOKEN")")
    BEGIN=$(frame 02 "$(hx_u32 0)")
    COMMIT=$(frame 04 "")
}

# hex_of STRING: its bytes in lower-case hex (od -v: no "*" for repeats).
hex_of() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

# Hex encoders for the protocol's fields (docs/protocol.md).
hx_u16() { printf '%04x' "$1"; }
hx_u32() { printf '%08x' "$1"; }
hx_str() {
    printf '%08x' "$(printf '%s' "$1" | wc -c)"
    hex_of "$1"
}
frame() { # TYPE PAYLOADHEX
    printf '%08x%s%s' $((1 + ${#2} / 2)) "$1" "$2"
}
exec_frame() { frame 03 "$(hx_str "$1")$(hx_str "$2")$(hx_u16 0)"; }

# raw ARG...: runs prog_rawframe; RAW[i] is the i-th reply line (from 0).
# shellcheck disable=SC2034 # RAW is for the test
raw() {
    local out
    out=$("$RAWFRAME_BIN" "$IT_SOCK" "$@") || fail "prog_rawframe failed: $out"
    mapfile -t RAW <<< "$out"
    printf '%s\n' "$out" | sed "s/^/[$IT_NAME]   reply: /"
}

# ------------------------------------------------------------ databases

# my_sql DB SQL: runs SQL on MariaDB (or MySQL), prints tab-separated rows, no
# header. Through the socket when there is one, else over TCP.
my_sql() {
    local to=(--protocol=TCP -h "$XAC_TEST_MYSQL_HOST" -P "$XAC_TEST_MYSQL_PORT")
    [ -z "${XAC_TEST_MYSQL_SOCKET:-}" ] || to=(--socket="$XAC_TEST_MYSQL_SOCKET")
    mariadb --no-defaults "${to[@]}" -u"$XAC_TEST_MYSQL_USER" \
        -p"$XAC_TEST_MYSQL_PASSWORD" -N -B "$1" -e "$2"
}

# Prints the XA RECOVER list as MariaDB's FORMAT='SQL' does (4th column
# X'gtrid',X'bqual',formatID, the form XA COMMIT/ROLLBACK take), on MySQL 8
# too, which lacks that format: there it is rebuilt from CONVERT XID's hex.
my_xa_recover_sql() {
    case $(my_sql "$XAC_TEST_MYSQL_DB" "SELECT VERSION()") in
    *MariaDB*) my_sql "$XAC_TEST_MYSQL_DB" "XA RECOVER FORMAT='SQL'" ;;
    *)
        my_sql "$XAC_TEST_MYSQL_DB" "XA RECOVER CONVERT XID" | awk -F'\t' -v OFS='\t' '{
            h = tolower($4); sub(/^0x/, "", h)
            print $1, $2, $3, "X\047" substr(h, 1, 2 * $2) "\047,X\047" substr(h, 2 * $2 + 1) "\047," $1
        }'
        ;;
    esac
}

# pg_sql SQL: runs SQL on PostgreSQL, prints '|'-separated rows, no header.
pg_sql() {
    PGPASSWORD=$XAC_TEST_PG_PASSWORD PGCONNECT_TIMEOUT=10 PGOPTIONS='-c client_min_messages=warning' psql -X -q -t -A -v ON_ERROR_STOP=1 \
        -h "$XAC_TEST_PG_HOST" -p "$XAC_TEST_PG_PORT" -U "$XAC_TEST_PG_USER" -d "$XAC_TEST_PG_DB" \
        -c "$1"
}

# Prepared branches of this test's node: one line per branch.
my_prepared() {
    local hex
    hex=$(hex_of "$IT_NODE.")
    my_xa_recover_sql | cut -f4 | grep -i "^X'$hex" || true
}
pg_prepared() {
    local gid
    pg_sql "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()" |
        while read -r gid; do
            [ -n "$gid" ] || continue
            [ "${gid%%.*}" = 2019648305 ] || continue
            local g=${gid#*.}
            g=${g%%.*}
            g=$(printf '%s' "$g" | tr '_-' '/+')
            while [ $((${#g} % 4)) != 0 ]; do g="$g="; done
            case $(printf '%s' "$g" | base64 -d 2> /dev/null) in
            "$IT_NODE".*) echo "$gid" ;;
            esac
        done
}

# Rolls back every prepared branch of this node (cleanup only).
it_purge_prepared() {
    local x
    for x in $(my_prepared); do my_sql "$XAC_TEST_MYSQL_DB" "XA ROLLBACK $x" || true; done
    for x in $(pg_prepared); do pg_sql "ROLLBACK PREPARED '$x'" || true; done
}

# Fails when a prepared branch of this node is left on either server.
assert_no_prepared() {
    local m p
    m=$(my_prepared)
    p=$(pg_prepared)
    [ -z "$m" ] || fail "${1:-}: prepared MariaDB branches left: $m"
    [ -z "$p" ] || fail "${1:-}: prepared PostgreSQL branches left: $p"
}

# MariaDB session ids of our user; start_xacd takes this snapshot so that
# wait_mysql_sessions_gone can tell xacd's sessions from anyone else's.
my_session_ids() {
    my_sql "$XAC_TEST_MYSQL_DB" "SELECT ID FROM information_schema.PROCESSLIST
        WHERE USER = '$XAC_TEST_MYSQL_USER' AND ID <> CONNECTION_ID() ORDER BY ID"
}

# Waits (bounded) until MariaDB has no session left that appeared after the
# last start_xacd: MariaDB lets another session finish a prepared branch only
# once its preparer has disconnected, and it notices a killed client a moment
# after the kill.
wait_mysql_sessions_gone() {
    local i left=""
    for i in $(seq 1 100); do
        left=$(comm -13 <(printf '%s\n' "$IT_MY_SESSIONS" | sort) <(my_session_ids | sort) | tr '\n' ' ')
        [ -z "${left// /}" ] && return 0
        sleep 0.1
    done
    fail "MariaDB sessions $left of the dead xacd are still there 10 s after it died"
}

# Size in bytes and a content hash of the journal directory's files.
# state_of GTRID: the state name `xac --status GTRID` reports.
state_of() {
    run_xac --status "$1" > /dev/null
    [ "$XAC_RC" = 0 ] || fail "xac --status $1: exit $XAC_RC: $XAC_OUT"
    printf '%s\n' "$XAC_LAST" | awk -v g="$1" '$1 == g {print $2}'
}

journal_bytes() {
    find "$IT_JOURNAL" -type f -printf '%s\n' 2> /dev/null | awk '{s += $1} END {print s + 0}'
}
journal_hash() {
    find "$IT_JOURNAL" -type f -print0 2> /dev/null | sort -z | xargs -0 -r cat | md5sum | cut -d' ' -f1
}

# --------------------------------------------------------------- asserts

assert_eq() { # EXPECTED ACTUAL MESSAGE
    [ "$1" = "$2" ] || fail "$3: expected '$1', saw '$2'"
    it_log "ok: $3 ($2)"
}

assert_ne() { # UNEXPECTED ACTUAL MESSAGE
    [ "$1" != "$2" ] || fail "$3: expected anything but '$1'"
    it_log "ok: $3 ($2)"
}

assert_contains() { # HAYSTACK NEEDLE MESSAGE
    case $1 in
    *"$2"*) it_log "ok: $3" ;;
    *) fail "$3: expected to find '$2' in: $1" ;;
    esac
}

assert_xacd_alive() {
    xacd_alive || fail "${1:-}: xacd is no longer running"
    it_log "ok: xacd still running${1:+ after $1}"
}

# ------------------------------------------------------------- accounts

# make_accounts TABLE [BALANCE]: (re)creates TABLE(id, balance) with account 1
# in all three databases (bank_a, bank_b, bank_c).
make_accounts() {
    local t=$1 bal=${2:-100} db
    # A branch an earlier failure left prepared would hold locks on the table.
    it_purge_prepared > /dev/null 2>&1 || true
    for db in "$XAC_TEST_MYSQL_DB" "$XAC_TEST_MYSQL_DB2"; do
        my_sql "$db" "SET SESSION lock_wait_timeout = 10; DROP TABLE IF EXISTS $t;
            CREATE TABLE $t (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB;
            INSERT INTO $t VALUES (1, $bal);" ||
            fail "could not create table $t in MariaDB database $db (held by a transaction?)"
    done
    pg_sql "SET lock_timeout = '10s'; DROP TABLE IF EXISTS $t;
        CREATE TABLE $t (id INT PRIMARY KEY, balance BIGINT NOT NULL);
        INSERT INTO $t VALUES (1, $bal);" > /dev/null ||
        fail "could not create table $t in PostgreSQL (held by a transaction?)"
}

drop_accounts() {
    local t=$1
    my_sql "$XAC_TEST_MYSQL_DB" "SET SESSION lock_wait_timeout = 10; DROP TABLE IF EXISTS $t" || true
    my_sql "$XAC_TEST_MYSQL_DB2" "SET SESSION lock_wait_timeout = 10; DROP TABLE IF EXISTS $t" || true
    pg_sql "SET lock_timeout = '10s'; DROP TABLE IF EXISTS $t" > /dev/null || true
}

# ms_sql SQL: runs T-SQL on SQL Server (bank_m's database) with FreeTDS's
# tsql, prints tab-separated rows, no header. Works against the stand-in and
# a real server alike.
ms_sql() {
    local out err=$IT_DIR/tsql.err
    out=$(printf '%s\ngo\n' "$1" | TDSVER=7.4 tsql -H "$XAC_TEST_MSSQL_HOST" -p "$XAC_TEST_MSSQL_PORT" \
        -U "$XAC_TEST_MSSQL_USER" -P "$XAC_TEST_MSSQL_PASSWORD" -D "$XAC_TEST_MSSQL_DB" -o fhq 2> "$err") || {
        cat "$err" >&2
        return 1
    }
    # SQL Server's messages go to stderr; the rows are what is left here.
    printf '%s\n' "$out" | grep -v -e '^$' -e '^locale' -e '^using default charset' \
        -e '^Setting ' -e '^Changed ' || true
}

# store_sql SQL: runs SQL on the TDS stand-in's PostgreSQL store of bank_m's
# database (stand-in only: seeding prepared branches, checking sessions).
store_sql() {
    PGPASSWORD=$XAC_TEST_TDS_PG_PASSWORD PGCONNECT_TIMEOUT=10 PGOPTIONS='-c client_min_messages=warning' psql -X -q -t -A -v ON_ERROR_STOP=1 \
        -h "$XAC_TEST_TDS_PG_HOST" -p "$XAC_TEST_TDS_PG_PORT" -U "$XAC_TEST_TDS_PG_USER" -d "$XAC_TEST_TDS_PG_DB" \
        -c "$1"
}

# ms_accounts TABLE [BALANCE]: (re)creates TABLE(id, balance) with account 1
# on bank_m's database.
ms_accounts() {
    local t=$1 bal=${2:-100}
    ms_sql "IF OBJECT_ID(N'$t', N'U') IS NOT NULL DROP TABLE $t" > /dev/null
    ms_sql "CREATE TABLE $t (id INT PRIMARY KEY, balance BIGINT NOT NULL)" > /dev/null
    ms_sql "INSERT INTO $t (id, balance) VALUES (1, $bal)" > /dev/null
    [ "$(bal_m "$t")" = "$bal" ] || fail "could not create table $t on SQL Server ($XAC_TEST_MSSQL_HOST:$XAC_TEST_MSSQL_PORT)"
}

# Balance of account 1 in TABLE on bank_a, bank_b, bank_c, bank_m.
bal_m() { ms_sql "SELECT balance FROM $1 WHERE id = 1" | tr -d ' \t\r'; }
bal_a() { my_sql "$XAC_TEST_MYSQL_DB" "SELECT balance FROM $1 WHERE id = 1"; }
bal_b() { pg_sql "SELECT balance FROM $1 WHERE id = 1"; }
bal_c() { my_sql "$XAC_TEST_MYSQL_DB2" "SELECT balance FROM $1 WHERE id = 1"; }
