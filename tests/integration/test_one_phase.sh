#!/usr/bin/env bash
# A transaction on one resource commits in one phase and writes nothing to the
# decision journal (same bytes); one on two resources writes (and forces) its
# decision.
. "$(dirname "$0")/lib.sh"
it_setup
T=it_one_phase
it_drop_tables() { drop_accounts $T; }
make_accounts $T 100
start_xacd

size0=$(journal_bytes)
hash0=$(journal_hash)
it_log "journal: $size0 bytes before"

it_log "one resource: bank_a (mysql driver)"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 1 -i 1
expect_committed "one-phase on bank_a"
it_log "one resource: bank_b (odbc postgresql), two statements"
run_xac "bank_b: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 2 -i 1 \
    "bank_b: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 2 -i 1
expect_committed "one-phase on bank_b"
it_log "one resource: bank_c (odbc mysql dialect)"
run_xac "bank_c: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 3 -i 1
expect_committed "one-phase on bank_c"
assert_eq "99 96 97" "$(bal_a $T) $(bal_b $T) $(bal_c $T)" "balances after the one-phase commits"
assert_eq "$size0" "$(journal_bytes)" "journal size after three one-phase commits"
assert_eq "$hash0" "$(journal_hash)" "journal content after three one-phase commits"

# Pipelined, the COMMIT waits behind the statement, and xacd sends both to
# PostgreSQL as one query: a local transaction, committed or rolled back.
it_log "one resource, pipelined: bank_b (BEGIN; UPDATE; COMMIT in one query)"
run_xac --pipeline "bank_b: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 4 -i 1
expect_committed "pipelined one-phase on bank_b"
assert_eq 92 "$(bal_b $T)" "bank_b after the pipelined one-phase commit"
run_xac --pipeline "bank_b: UPDATE $T SET balance = balance / ? WHERE id = ?" -i 0 -i 1
expect_rolled_back bank_b "a pipelined statement that fails on bank_b"
case $XAC_OUT in
*"22012"* | *"division by zero"*) it_log "ok: the failure names division by zero" ;;
*) fail "the pipelined failure does not say why: $XAC_OUT" ;;
esac
assert_eq 92 "$(bal_b $T)" "bank_b after the failed pipelined statement"
assert_eq "$hash0" "$(journal_hash)" "journal content after the pipelined one-phase transactions"

it_log "two resources: bank_a and bank_b"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 10 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 10 -i 1
expect_committed "two-phase"
# The COMMIT record is forced before the reply, so it is on disk now. The
# segment is preallocated, so its size stays; its content changes.
assert_ne "$hash0" "$(journal_hash)" "journal content changed by the two-phase commit"
it_log "ok: the journal's content changed with the two-phase commit"
assert_eq "89 102" "$(bal_a $T) $(bal_b $T)" "balances after the two-phase commit"
stop_xacd
it_pass
