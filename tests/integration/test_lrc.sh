#!/usr/bin/env bash
# SQL Server as a last resource (driver mssql; the TDS stand-in here, a real
# SQL Server under scripts/test-containers.sh), end to end through xacd:
#   1. a transfer across MariaDB (bank_a), PostgreSQL (bank_b) and SQL Server
#      (bank_m) commits on all three, with a commit marker on SQL Server that
#      is removed once the transaction has ended;
#   2. a failure on any of the three rolls all three back, and SQL Server's
#      error numbers reach the client with the resource name (2627 duplicate
#      key, 547 constraint, 1205 deadlock victim);
#   3. a second last resource (bank_m2) in one transaction is refused at its
#      first EXEC (ELIMIT, the session stays open), and the transaction rolls
#      back;
#   4. a transaction on SQL Server alone commits in one phase without a
#      marker, and one that only reads on MariaDB commits too;
#   5. a login failure and a SQL Server that went away reach the client as
#      clear errors naming the resource; after the server is back, the pool
#      reconnects.
. "$(dirname "$0")/lib.sh"
it_setup
[ -n "${XAC_TEST_MSSQL_HOST:-}" ] || fail "XAC_TEST_MSSQL_HOST is not set: tests/fixtures/db.sh starts the TDS stand-in and writes it to env.sh"
T=it_lrc
TDS_KILLED=""
it_drop_tables() {
    # A failure while the stand-in was down must not leave it down.
    [ -z "$TDS_KILLED" ] || "$XAC_SOURCE_DIR/tests/fixtures/db.sh" start-tds "$XAC_TEST_DIR" > /dev/null 2>&1 || true
    drop_accounts $T
    ms_sql "IF OBJECT_ID(N'$T', N'U') IS NOT NULL DROP TABLE $T" > /dev/null 2>&1 || true
}
make_accounts $T 100
ms_accounts $T 100
it_write_config "$IT_CONF" bank_a bank_b bank_m bank_m2
# bank_m2 logs in with a wrong password: the refusal of a second last
# resource comes before any connection, and its login failure is case 5.
sed -i '/name = "bank_m2"/,/}/ s/password = ".*";/password = "wrong-password";/' "$IT_CONF"
echo "recovery = { interval_ms = 500; grace_ms = 60000; retry_min_ms = 500; retry_max_ms = 2000; };" >> "$IT_CONF"
start_xacd

balances() { echo "$(bal_a $T) $(bal_b $T) $(bal_m $T)"; }
marker_of() { ms_sql "SELECT outcome FROM xac_marker_bank_m WHERE gtrid = '$1'" | tr -d ' \t\r'; }
markers() { ms_sql "SELECT COUNT(*) FROM xac_marker_bank_m WHERE outcome = 'C'" | tr -d ' \t\r'; }

it_log "1. bank_a -30, bank_b +10, bank_m +20 in one transaction"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 10 -i 1 \
    "bank_m: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 20 -i 1
expect_committed "three-way transfer"
g=$(xac_gtrid)
assert_eq "70 110 120" "$(balances)" "balances after the three-way transfer"
assert_eq COMMITTED "$(state_of "$g")" "STATUS of the three-way transfer"
m=$(marker_of "$g")
case $m in
C | "") it_log "ok: marker of $g right after the commit: '${m:-removed already}'" ;;
*) fail "marker of $g is '$m', expected C (or already removed)" ;;
esac
for i in $(seq 1 100); do
    [ -z "$(marker_of "$g")" ] && break
    sleep 0.2
done
assert_eq "" "$(marker_of "$g")" "the marker of $g is removed after the END (at the next recovery pass)"

it_log "1b. a SELECT on SQL Server sees its own transaction's work"
run_xac "bank_m: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 1 -i 1 \
    "bank_m: SELECT id, balance FROM $T WHERE id = ?" -i 1 \
    "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 1 -i 1
expect_committed "update + select on bank_m"
assert_contains "$XAC_OUT" "$(printf '1\t121')" "the SELECT on bank_m saw the update"
assert_eq "69 110 121" "$(balances)" "balances"

it_log "2. a failure on any of the three rolls back all three"
before=$(balances)
run_xac "bank_m: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 5 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 5 -i 1 \
    "bank_a: UPDATE no_such_table_$T SET balance = 0"
expect_rolled_back bank_a "an error on MariaDB"
assert_eq "$before" "$(balances)" "balances after a MariaDB error"

run_xac "bank_m: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 5 -i 1 \
    "bank_a: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 5 -i 1 \
    "bank_b: UPDATE no_such_table_$T SET balance = 0"
expect_rolled_back bank_b "an error on PostgreSQL"
assert_eq "$before" "$(balances)" "balances after a PostgreSQL error"

run_xac "bank_a: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 5 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 5 -i 1 \
    "bank_m: INSERT INTO $T (id, balance) VALUES (?, ?)" -i 1 -i 5
assert_contains "$XAC_OUT" "bank_m" "the duplicate key error names the resource"
assert_contains "$XAC_OUT" "2627" "the duplicate key error carries SQL Server's number"
expect_rolled_back bank_m "a duplicate key on SQL Server"
assert_eq "$before" "$(balances)" "balances after a SQL Server duplicate key"

ms_sql "IF OBJECT_ID(N'${T}_chk', N'U') IS NOT NULL DROP TABLE ${T}_chk" > /dev/null
ms_sql "CREATE TABLE ${T}_chk (id INT PRIMARY KEY, v INT NOT NULL CHECK (v >= 0))" > /dev/null
run_xac "bank_a: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 5 -i 1 \
    "bank_m: INSERT INTO ${T}_chk (id, v) VALUES (?, ?)" -i 1 -i -1
assert_contains "$XAC_OUT" "547" "a CHECK violation carries SQL Server's number 547"
assert_contains "$XAC_OUT" "bank_m" "the constraint error names the resource"
expect_rolled_back bank_m "a constraint violation on SQL Server"
assert_eq "$before" "$(balances)" "balances after a SQL Server constraint violation"
ms_sql "DROP TABLE ${T}_chk" > /dev/null

if [ "${XAC_TEST_EXTERNAL:-0}" != 1 ]; then
    # A deadlock on demand: the stand-in's THROW takes any error number (a
    # real SQL Server wants >= 50000) and treats 1205 as SQL Server does,
    # rolling the transaction back.
    run_xac "bank_a: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 5 -i 1 \
        "bank_m: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 5 -i 1 \
        "bank_m: THROW 1205, 'chosen as the deadlock victim', 1"
    assert_contains "$XAC_OUT" "1205" "a deadlock carries SQL Server's number 1205"
    assert_contains "$XAC_OUT" "bank_m" "the deadlock error names the resource"
    expect_rolled_back bank_m "a deadlock victim on SQL Server"
    assert_eq "$before" "$(balances)" "balances after a SQL Server deadlock"
else
    it_log "skipped: a deadlock on demand needs the stand-in's THROW 1205"
fi
assert_no_prepared "after the failures"

it_log "3. a second last resource in one transaction is refused"
run_xac "bank_m: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 5 -i 1 \
    "bank_m2: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 5 -i 1 \
    "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 10 -i 1
case $XAC_OUT in
*"was lost"*) fail "the refusal closed the session: $XAC_OUT" ;;
esac
assert_contains "$XAC_OUT" "bank_m2" "the refusal names the second last resource"
assert_contains "$XAC_OUT" "at most one" "the refusal says why"
expect_rolled_back bank_m2 "a transaction with two last resources"
assert_eq "$before" "$(balances)" "balances after the refusal"

it_log "4. one phase, no marker: SQL Server alone; and with a MariaDB branch that only reads"
n0=$(markers)
run_xac "bank_m: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 1 -i 1
expect_committed "SQL Server alone"
g1=$(xac_gtrid)
run_xac "bank_a: SELECT balance FROM $T WHERE id = ?" -i 1 \
    "bank_m: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 1 -i 1
expect_committed "SQL Server with a read-only MariaDB branch"
g2=$(xac_gtrid)
assert_eq "" "$(marker_of "$g1")" "no marker for a one-phase commit on SQL Server alone"
it_log "ok: $g2 (MariaDB reads, SQL Server writes) committed; MariaDB prepares even a read-only XA branch, so it had a marker: '$(marker_of "$g2")'"
set -- $before
assert_eq "$1 $2 $(($3 + 2))" "$(balances)" "balances after the one-phase commits"
it_log "ok: commit markers before: $n0"

it_log "5. errors that are not SQL: a login failure, a server that went away"
run_xac "bank_m2: SELECT 1"
assert_ne 0 "$XAC_RC" "xac exit code with a wrong password"
assert_contains "$XAC_OUT" "bank_m2" "the login failure names the resource"
assert_contains "$(printf '%s' "$XAC_OUT" | tr '[:upper:]' '[:lower:]')" "login failed" "the login failure says so"

if [ -n "${XAC_TEST_DIR:-}" ] && [ "${XAC_TEST_EXTERNAL:-0}" != 1 ]; then
    TDS_KILLED=y
    "$XAC_SOURCE_DIR/tests/fixtures/db.sh" kill-tds "$XAC_TEST_DIR" > /dev/null
    run_xac "bank_m: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 1 -i 1 \
        "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 1 -i 1
    assert_ne 0 "$XAC_RC" "xac exit code with SQL Server down"
    assert_contains "$XAC_OUT" "bank_m" "the error names the resource that went away"
    assert_contains "$XAC_OUT" "$XAC_TEST_MSSQL_HOST:$XAC_TEST_MSSQL_PORT" "the error names the server that went away"
    "$XAC_SOURCE_DIR/tests/fixtures/db.sh" start-tds "$XAC_TEST_DIR" > /dev/null
    TDS_KILLED=""
    ok=""
    for i in $(seq 1 50); do
        run_xac "bank_m: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 1 -i 1 \
            "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 1 -i 1
        [ "$XAC_RC" = 0 ] && ok=y && break
        sleep 0.2
    done
    [ "$ok" = y ] || fail "xacd did not reach SQL Server again after its restart"
    it_log "ok: after the restart of SQL Server the pool reconnected"
else
    it_log "skipped: killing SQL Server needs the local stand-in"
fi
assert_no_prepared "at the end"
stop_xacd
it_pass
