#!/usr/bin/env bash
# Rollback end to end: an explicit --rollback leaves every resource unchanged;
# an SQL error in one statement rolls back the whole transaction, on every
# resource, and the client is told which resource failed.
. "$(dirname "$0")/lib.sh"
it_setup
T=it_rollback
it_drop_tables() { drop_accounts $T; }
make_accounts $T 100
start_xacd

it_log "--rollback after changes on bank_a and bank_b"
run_xac --rollback "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 30 -i 1
assert_eq 0 "$XAC_RC" "--rollback exit code"
case $XAC_LAST in "rolled back $IT_NODE."*) ;; *) fail "--rollback: last line '$XAC_LAST'" ;; esac
assert_eq "100 100" "$(bal_a $T) $(bal_b $T)" "balances after --rollback"

it_log "SQL error on bank_b after a change on bank_a"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: UPDATE no_such_table_$T SET balance = balance + ? WHERE id = ?" -i 30 -i 1
expect_rolled_back bank_b "SQL error on bank_b"
assert_contains "$XAC_OUT" "no_such_table_$T" "the database's message is shown"
assert_eq "100 100" "$(bal_a $T) $(bal_b $T)" "balances after the failed transfer"

it_log "SQL error on bank_a (duplicate key) after a change on bank_b"
run_xac "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 30 -i 1 \
    "bank_a: INSERT INTO $T (id, balance) VALUES (?, ?)" -i 1 -i 5
expect_rolled_back bank_a "duplicate key on bank_a"
assert_contains "$XAC_OUT" "1062" "MariaDB's error number (1062 duplicate entry) is shown"
assert_eq "100 100" "$(bal_a $T) $(bal_b $T)" "balances after the failed transfer"

it_log "SQL error on bank_c (ODBC mysql dialect) after changes on bank_a and bank_b"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 30 -i 1 \
    "bank_c: SELECT no_such_column FROM $T"
expect_rolled_back bank_c "SQL error on bank_c"
assert_eq "100 100 100" "$(bal_a $T) $(bal_b $T) $(bal_c $T)" "balances after the failed transfer"

it_log "an error in the middle statement (division by zero on bank_b)"
run_xac "bank_a: UPDATE $T SET balance = balance - 1 WHERE id = 1" \
    "bank_b: SELECT 1/0" \
    "bank_c: UPDATE $T SET balance = balance + 1 WHERE id = 1"
expect_rolled_back bank_b "division by zero on bank_b"
assert_eq "100 100 100" "$(bal_a $T) $(bal_b $T) $(bal_c $T)" "balances"

assert_no_prepared "after the rollbacks"
it_log "a normal transfer still commits"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 1 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 1 -i 1
expect_committed "transfer after the rollbacks"
assert_eq "99 101" "$(bal_a $T) $(bal_b $T)" "balances"
stop_xacd
it_pass
