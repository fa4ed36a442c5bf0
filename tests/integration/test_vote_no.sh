#!/usr/bin/env bash
# A "no" vote at prepare: PostgreSQL checks a DEFERRABLE INITIALLY DEFERRED
# foreign key only at PREPARE TRANSACTION, after every statement succeeded.
# The whole transaction must roll back, MariaDB included, and the client must
# learn that bank_b refused.
. "$(dirname "$0")/lib.sh"
it_setup
T=it_vote
it_drop_tables() {
    drop_accounts $T
    pg_sql "DROP TABLE IF EXISTS ${T}_child" > /dev/null || true
}
make_accounts $T 100
pg_sql "DROP TABLE IF EXISTS ${T}_child;
    CREATE TABLE ${T}_child (id INT PRIMARY KEY,
        acct INT NOT NULL REFERENCES $T (id) DEFERRABLE INITIALLY DEFERRED)" > /dev/null
start_xacd

it_log "transfer whose PostgreSQL branch breaks a deferred foreign key"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: INSERT INTO ${T}_child (id, acct) VALUES (?, ?)" -i 1 -i 999
expect_rolled_back bank_b "deferred FK violated at prepare"
assert_contains "$XAC_OUT" "23503" "PostgreSQL's SQLSTATE 23503 (foreign key violation) is shown"
assert_eq 100 "$(bal_a $T)" "MariaDB balance unchanged"
assert_eq 100 "$(bal_b $T)" "PostgreSQL balance unchanged"
assert_eq 0 "$(pg_sql "SELECT COUNT(*) FROM ${T}_child")" "no child row"
assert_no_prepared "after the no vote"

it_log "the same with the ODBC mysql dialect as a third branch"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 30 -i 1 \
    "bank_c: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: INSERT INTO ${T}_child (id, acct) VALUES (?, ?)" -i 2 -i 999
expect_rolled_back bank_b "deferred FK violated at prepare, three branches"
assert_eq "100 100 100" "$(bal_a $T) $(bal_b $T) $(bal_c $T)" "balances unchanged"
assert_no_prepared "after the second no vote"

it_log "the same pipelined: both branches are prepared with their last statements"
# With xac --pipeline the COMMIT waits behind the statements, so xacd sends
# bank_a's UPDATE with XA END; XA PREPARE, and bank_b's INSERT with PREPARE
# TRANSACTION, which PostgreSQL refuses: the prepared MariaDB branch must be
# rolled back.
log_before=$(wc -l < "$IT_LOG")
run_xac --pipeline "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: INSERT INTO ${T}_child (id, acct) VALUES (?, ?)" -i 4 -i 999
expect_rolled_back bank_b "deferred FK violated, pipelined"
assert_contains "$XAC_OUT" "23503" "PostgreSQL's SQLSTATE 23503 is shown (pipelined)"
assert_eq "100 100" "$(bal_a $T) $(bal_b $T)" "balances unchanged (pipelined)"
assert_no_prepared "after the pipelined no vote"
tail -n +"$((log_before + 1))" "$IT_LOG" | grep "the last statement on bank_a with its prepare" > /dev/null ||
    fail "xacd did not prepare bank_a's branch with its statement"
tail -n +"$((log_before + 1))" "$IT_LOG" | grep "the last statement on bank_b with its prepare" > /dev/null ||
    fail "xacd did not send bank_b's last statement with its prepare"

it_log "a valid child row commits"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: INSERT INTO ${T}_child (id, acct) VALUES (?, ?)" -i 3 -i 1
expect_committed "valid deferred FK"
assert_eq 70 "$(bal_a $T)" "MariaDB balance"
assert_eq 1 "$(pg_sql "SELECT COUNT(*) FROM ${T}_child")" "child row committed"
stop_xacd
it_pass
