#!/usr/bin/env bash
# End to end through xacd and the xac CLI: transfers that commit on every
# resource: MariaDB (mysql driver) to PostgreSQL (odbc), MariaDB through the
# odbc mysql dialect, and one transaction over all three.
. "$(dirname "$0")/lib.sh"
it_setup
T=it_transfer
it_drop_tables() { drop_accounts $T; }
make_accounts $T 100
start_xacd

it_log "MariaDB (bank_a) -> PostgreSQL (bank_b), 30"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 30 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 30 -i 1
expect_committed "bank_a -> bank_b"
assert_eq 70 "$(bal_a $T)" "bank_a balance after the transfer"
assert_eq 130 "$(bal_b $T)" "bank_b balance after the transfer"

it_log "PostgreSQL (bank_b) -> MariaDB via ODBC (bank_c), 20, with a SELECT in between"
run_xac "bank_b: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 20 -i 1 \
    "bank_c: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 20 -i 1 \
    "bank_c: SELECT id, balance FROM $T WHERE id = ?" -i 1
expect_committed "bank_b -> bank_c"
assert_contains "$XAC_OUT" "$(printf '1\t120')" "the SELECT saw its own transaction's update"
assert_eq 110 "$(bal_b $T)" "bank_b balance"
assert_eq 120 "$(bal_c $T)" "bank_c balance"

it_log "three resources in one transaction"
run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 10 -i 1 \
    "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 5 -i 1 \
    "bank_c: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 5 -i 1
expect_committed "bank_a -> bank_b + bank_c"
assert_eq "60 115 125" "$(bal_a $T) $(bal_b $T) $(bal_c $T)" "balances a b c"
assert_eq 300 $(($(bal_a $T) + $(bal_b $T) + $(bal_c $T))) "total money"

it_log "text and NULL parameters, and a script file (-f)"
cat > "$IT_DIR/tx.xac" <<SCRIPT
# a transfer written as a script
bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?
? int 1
? int 1
bank_b: INSERT INTO $T (id, balance) VALUES (?, ?)
? int 2
? int 1
bank_a: SELECT ? IS NULL, CONCAT(?, '!')
? null
? text hello world
SCRIPT
run_xac -f "$IT_DIR/tx.xac"
expect_committed "script"
assert_contains "$XAC_OUT" "$(printf '1\thello world!')" "NULL and text parameters bound"
assert_eq 59 "$(bal_a $T)" "bank_a after the script"
assert_eq 1 "$(pg_sql "SELECT balance FROM $T WHERE id = 2")" "bank_b row inserted by the script"

gtrid=$(xac_gtrid)
run_xac --status "$gtrid"
assert_eq 0 "$XAC_RC" "xac --status exit code"
assert_contains "$XAC_LAST" "$gtrid" "status names the gtrid"
assert_contains "$(echo "$XAC_LAST" | tr '[:upper:]' '[:lower:]')" "committed" "status of a committed transaction"

assert_no_prepared "after the transfers"
stop_xacd
it_pass
