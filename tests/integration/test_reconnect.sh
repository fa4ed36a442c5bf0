#!/usr/bin/env bash
# Each driver pools its connections and reconnects after a server restart:
# with pooled connections in place, MariaDB (mysql driver) and then
# PostgreSQL (odbc driver) are stopped and started again under a running
# xacd. While a server is down a transfer touching it is refused cleanly
# (rolled back, the resource named, the other database untouched, xacd up);
# once it is back a transfer commits again within a bounded number of tries,
# and the balances show every committed transfer exactly once. A database this
# test stopped is always started again on exit: other tests share the servers.
. "$(dirname "$0")/lib.sh"
it_need_local_servers "stops and restarts MariaDB and PostgreSQL"
it_setup
T=it_reconnect
it_drop_tables() { drop_accounts $T; }
DB_SH=$XAC_SOURCE_DIR/tests/fixtures/db.sh
[ -n "${XAC_TEST_DIR:-}" ] || fail "XAC_TEST_DIR is not set: source the env.sh that tests/fixtures/db.sh wrote"
[ -x "$DB_SH" ] || [ -f "$DB_SH" ] || fail "$DB_SH is missing"

MYSQL_DOWN=""
PG_DOWN=""

# db_start WHICH: starts mysql or pg again; MariaDB may find its port still
# busy for a moment, so a few tries.
db_start() {
    local i
    for i in 1 2 3 4 5; do
        if bash "$DB_SH" "start-$1" "$XAC_TEST_DIR" > "$IT_DIR/db-start-$1.log" 2>&1; then
            return 0
        fi
        sed "s/^/[$IT_NAME]   db.sh: /" "$IT_DIR/db-start-$1.log" >&2
        sleep 1
    done
    return 1
}

db_stop() {
    case $1 in
    mysql) MYSQL_DOWN=1 ;;
    pg) PG_DOWN=1 ;;
    esac
    bash "$DB_SH" "stop-$1" "$XAC_TEST_DIR" || fail "db.sh stop-$1 failed"
}

# On any exit: the servers come back before lib.sh's cleanup, which needs them.
restart_stopped_dbs() {
    if [ -n "$MYSQL_DOWN" ]; then
        db_start mysql && MYSQL_DOWN="" || echo "[$IT_NAME] could not restart MariaDB in $XAC_TEST_DIR" >&2
    fi
    if [ -n "$PG_DOWN" ]; then
        db_start pg && PG_DOWN="" || echo "[$IT_NAME] could not restart PostgreSQL in $XAC_TEST_DIR" >&2
    fi
}
# shellcheck disable=SC2154 # it_rc is set inside the trap itself
trap 'it_rc=$?; set +e; restart_stopped_dbs; (exit $it_rc); it_cleanup' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# transfer FROM TO AMOUNT: one transfer of account 1 from resource FROM to TO.
transfer() {
    run_xac "$1: UPDATE $T SET balance = balance - ? WHERE id = ?" -i "$3" -i 1 \
        "$2: UPDATE $T SET balance = balance + ? WHERE id = ?" -i "$3" -i 1
}

# transfer_until_committed WHAT FROM TO AMOUNT: right after a restart the
# pool may still be backing off; retries a refused (rolled back) transfer
# every 0.5 s, 30 tries at most. Any other outcome fails at once: a rolled
# back try changes nothing, so the balances stay exact.
transfer_until_committed() {
    local what=$1 i
    shift
    for i in $(seq 1 30); do
        transfer "$@"
        case $XAC_RC in
        0)
            expect_committed "$what"
            it_log "ok: $what: committed on try $i"
            return 0
            ;;
        1) sleep 0.5 ;;
        *) fail "$what: try $i: expected commit or a clean rollback, got exit $XAC_RC: $XAC_OUT" ;;
        esac
    done
    fail "$what: no transfer committed in 30 tries (15 s) after the restart; last: $XAC_LAST"
}

# assert_pg_row_free WHAT / assert_my_row_free WHAT: the row of account 1 is
# not left locked (NOWAIT: a held lock errors instead of waiting).
assert_pg_row_free() {
    local out
    out=$(pg_sql "SELECT balance FROM $T WHERE id = 1 FOR UPDATE NOWAIT" 2>&1) ||
        fail "$1: the bank_b row is still locked: $out"
}
assert_my_row_free() {
    local out
    out=$(my_sql "$XAC_TEST_MYSQL_DB" "SELECT balance FROM $T WHERE id = 1 FOR UPDATE NOWAIT" 2>&1) ||
        fail "$1: the bank_a row is still locked: $out"
}

# Protocol frames for prog_rawframe (hex), to see the error code itself,
# which the xac CLI does not print.
hex_str() { printf '%08x%s' "${#1}" "$(hex_of "$1")"; }
frame() { # TYPE PAYLOAD-HEX
    printf '%08x%s%s' $((${#2} / 2 + 1)) "$1" "$2"
}
raw_exec() { # RESOURCE SQL: HELLO, BEGIN, EXEC, ROLLBACK; one line per reply
    "$RAWFRAME_BIN" "$IT_SOCK" "$(frame 01 "0001$(hex_str app)$(hex_str "$IT_TOKEN")")" \
        "$(frame 02 00000000)" "$(frame 03 "$(hex_str "$1")$(hex_str "$2")0000")" "$(frame 05 "")"
}

make_accounts $T 100
start_xacd

it_log "---- a transfer, so that both pools hold connections"
transfer bank_a bank_b 10
expect_committed "first transfer"
assert_eq "90 110" "$(bal_a $T) $(bal_b $T)" "balances a b after the first transfer"

# ------------------------------------------------------------ MariaDB
it_log "---- MariaDB stopped under a running xacd"
db_stop mysql
# bank_b first, so its branch is open and updated when bank_a fails.
transfer bank_b bank_a 5
expect_rolled_back bank_a "transfer while MariaDB is down"
assert_contains "$XAC_OUT" "bank_a" "the refusal names bank_a"
assert_xacd_alive "a transfer to a stopped MariaDB"
assert_eq 110 "$(bal_b $T)" "bank_b balance unchanged by the refused transfer"
assert_pg_row_free "MariaDB down"
[ -z "$(pg_prepared)" ] || fail "MariaDB down: a prepared PostgreSQL branch is left: $(pg_prepared)"
gtrid=$(xac_gtrid)
run_xac --status "$gtrid"
assert_eq "$gtrid ROLLED_BACK" "$XAC_LAST" "status of the refused transfer"

out=$(raw_exec bank_a "SELECT 1") || fail "prog_rawframe: $out"
printf '%s\n' "$out" | sed "s/^/[$IT_NAME]   rawframe: /"
assert_contains "$(printf '%s\n' "$out" | sed -n 3p)" "ERROR XAC_ERMFAIL resource=bank_a " \
    "EXEC on bank_a while MariaDB is down gets ERROR ERMFAIL naming bank_a"
assert_contains "$(printf '%s\n' "$out" | sed -n 4p)" "OUTCOME 1" "and the transaction rolls back"

it_log "---- MariaDB started again"
db_start mysql || fail "could not start MariaDB again"
MYSQL_DOWN=""
transfer_until_committed "transfer after the MariaDB restart" bank_a bank_b 20
assert_eq "70 130" "$(bal_a $T) $(bal_b $T)" "balances a b after the MariaDB restart"
transfer bank_b bank_a 1
expect_committed "a second transfer after the MariaDB restart"
assert_eq "71 129" "$(bal_a $T) $(bal_b $T)" "balances a b"

# ------------------------------------------------------------ PostgreSQL
it_log "---- PostgreSQL stopped under a running xacd"
db_stop pg
transfer bank_a bank_b 5
expect_rolled_back bank_b "transfer while PostgreSQL is down"
assert_xacd_alive "a transfer to a stopped PostgreSQL"
assert_eq 71 "$(bal_a $T)" "bank_a balance unchanged by the refused transfer"
assert_my_row_free "PostgreSQL down"
[ -z "$(my_prepared)" ] || fail "PostgreSQL down: a prepared MariaDB branch is left: $(my_prepared)"

it_log "---- PostgreSQL started again"
db_start pg || fail "could not start PostgreSQL again"
PG_DOWN=""
transfer_until_committed "transfer after the PostgreSQL restart" bank_b bank_a 30
assert_eq "101 99" "$(bal_a $T) $(bal_b $T)" "balances a b after the PostgreSQL restart"
transfer bank_a bank_b 1
expect_committed "a second transfer after the PostgreSQL restart"
assert_eq "100 100" "$(bal_a $T) $(bal_b $T)" "balances a b: every committed transfer exactly once"

assert_no_prepared "after the restarts"
assert_xacd_alive "both restarts"
stop_xacd
it_pass
