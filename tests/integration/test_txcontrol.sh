#!/usr/bin/env bash
# A COMMIT sent through EXEC to PostgreSQL (bank_b, ODBC) must not commit the
# branch early: xacd refuses it, and a second statement after ';', before
# anything reaches the server, and the whole transaction rolls back on every
# resource.
. "$(dirname "$0")/lib.sh"
it_setup
T=it_txcontrol
it_drop_tables() { drop_accounts $T; }
make_accounts $T 100
start_xacd

it_log "bank_b: COMMIT in the middle of a transfer"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: COMMIT"
expect_rolled_back bank_b "COMMIT on bank_b"
assert_contains "$XAC_OUT" "transaction control (COMMIT)" "the refusal is explained"
assert_eq "100 100" "$(bal_a $T) $(bal_b $T)" "balances after the refused COMMIT"

it_log "bank_b: an UPDATE and a COMMIT in one string"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + 30 WHERE id = 1; COMMIT"
expect_rolled_back bank_b "UPDATE; COMMIT on bank_b"
assert_contains "$XAC_OUT" "one statement per EXEC" "the refusal is explained"
assert_eq "100 100" "$(bal_a $T) $(bal_b $T)" "balances after the refused second statement"

it_log "bank_b alone (one phase): UPDATE, then END"
run_xac "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 30 -i 1 "bank_b: END"
expect_rolled_back bank_b "END on bank_b"
assert_eq "100" "$(bal_b $T)" "bank_b balance after the refused END"

it_log "bank_b: PREPARE TRANSACTION of its own"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: PREPARE TRANSACTION 'mine'"
expect_rolled_back bank_b "PREPARE TRANSACTION on bank_b"
assert_eq "100 100" "$(bal_a $T) $(bal_b $T)" "balances after the refused PREPARE TRANSACTION"
assert_eq "" "$(pg_sql "SELECT gid FROM pg_prepared_xacts WHERE gid = 'mine'")" \
    "no prepared transaction 'mine'"

assert_no_prepared "after the refusals"
it_log "a transfer with a ';' inside a string and savepoints still commits"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 1 -i 1 \
    "bank_b: SAVEPOINT s" \
    "bank_b: UPDATE $T SET balance = balance + 50 WHERE id = 1" \
    "bank_b: ROLLBACK TO SAVEPOINT s" \
    "bank_b: UPDATE $T SET balance = balance + length('a;b') - 2 WHERE id = 1; -- one"
expect_committed "transfer with savepoints"
assert_eq "99 101" "$(bal_a $T) $(bal_b $T)" "balances"
stop_xacd
it_pass
