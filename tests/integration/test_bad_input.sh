#!/usr/bin/env bash
# Bad input from clients: malformed frames, an oversize length, a wrong token,
# an unknown resource and failing SQL each get the ERROR code of
# docs/protocol.md, and xacd stays up and keeps committing afterwards.
# Frames are written by hand (prog_rawframe) so that nothing in libxac hides
# what xacd really does.
. "$(dirname "$0")/lib.sh"
it_setup
it_rawframe_setup
T=it_bad_input
it_drop_tables() { drop_accounts $T; }
make_accounts $T 100
start_xacd

n_ok=0
# After every case: xacd is alive and a normal transfer commits.
still_works() {
    assert_xacd_alive "$1"
    run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 1 -i 1 \
        "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 1 -i 1
    expect_committed "a transfer after $1"
    n_ok=$((n_ok + 1))
    assert_eq "$((100 - n_ok)) $((100 + n_ok))" "$(bal_a $T) $(bal_b $T)" "balances after $1"
}

it_log "unknown frame type"
raw "$HELLO" "$(frame 7e "")" read
assert_eq "WELCOME $IT_NODE" "${RAW[0]}" "HELLO is welcomed"
assert_contains "${RAW[1]}" "ERROR XAC_EPROTO" "an unknown frame type gets EPROTO"
assert_eq CLOSED "${RAW[2]}" "the connection is closed after EPROTO"
still_works "an unknown frame type"

it_log "truncated payload (BEGIN with 2 of 4 bytes)"
raw "$HELLO" "$(frame 02 0000)" read
assert_contains "${RAW[1]}" "ERROR XAC_EPROTO" "a truncated payload gets EPROTO"
assert_eq CLOSED "${RAW[2]}" "closed after a truncated payload"
still_works "a truncated payload"

it_log "bytes left over after a payload (COMMIT with one byte)"
raw "$HELLO" "$BEGIN" "$(frame 04 00)" read
assert_contains "${RAW[2]}" "ERROR XAC_EPROTO" "a payload with trailing bytes gets EPROTO"
assert_eq CLOSED "${RAW[3]}" "closed after trailing bytes"
still_works "trailing bytes"

it_log "bad value tag, in a transaction that already changed a row"
upd="UPDATE $T SET balance = balance - 50 WHERE id = 1"
bad_exec=$(frame 03 "$(hx_str bank_a)$(hx_str "SELECT ?")$(hx_u16 1)09")
raw "$HELLO" "$BEGIN" "$(exec_frame bank_a "$upd")" "$bad_exec" read
assert_contains "${RAW[1]}" "BEGUN $IT_NODE." "BEGIN answered"
assert_eq RESULT "${RAW[2]}" "the UPDATE ran"
assert_contains "${RAW[3]}" "ERROR XAC_EPROTO" "a bad value tag gets EPROTO"
assert_eq CLOSED "${RAW[4]}" "closed after a bad value tag"
still_works "a bad value tag" # also shows the open transaction was rolled back

it_log "a session that closes with a transaction open"
raw "$HELLO" "$BEGIN" "$(exec_frame bank_a "$upd")" "$(exec_frame bank_b "UPDATE $T SET balance = balance + 50 WHERE id = 1")"
assert_eq "RESULT RESULT" "${RAW[2]} ${RAW[3]}" "both UPDATEs ran"
still_works "a disconnect with an open transaction" # its changes were rolled back

it_log "oversize frame length"
raw "$HELLO" "7fffffff02" read
assert_contains "${RAW[1]}" "ERROR XAC_ELIMIT" "a length above max_frame gets ELIMIT"
assert_eq CLOSED "${RAW[2]}" "closed after ELIMIT"
still_works "an oversize frame"

it_log "zero frame length"
raw "$HELLO" "00000000" read
assert_contains "${RAW[1]}" "ERROR XAC_EPROTO" "a zero length gets EPROTO"
still_works "a zero length"

it_log "wrong token, raw and through xac"
raw "$(frame 01 "$(hx_u16 1)$(hx_str app)$(hx_str "wrong-$IT_TOKEN")")" read
assert_contains "${RAW[0]}" "ERROR XAC_EAUTH" "a wrong token gets EAUTH"
assert_eq CLOSED "${RAW[1]}" "closed after EAUTH"
raw "$(frame 01 "$(hx_u16 1)$(hx_str nobody)$(hx_str "$IT_TOKEN")")" read
assert_contains "${RAW[0]}" "ERROR XAC_EAUTH" "an unknown client gets EAUTH"
raw "$BEGIN" read
assert_contains "${RAW[0]}" "ERROR XAC_EAUTH" "a request before HELLO gets EAUTH"
assert_eq CLOSED "${RAW[1]}" "closed after a request before HELLO"
run_xac -t "wrong-$IT_TOKEN" "bank_a: UPDATE $T SET balance = balance - 1 WHERE id = 1"
assert_eq 3 "$XAC_RC" "xac exit code with a wrong token"
still_works "a wrong token"

it_log "unsupported version, second HELLO"
raw "$(frame 01 "$(hx_u16 2)$(hx_str app)$(hx_str "$IT_TOKEN")")" read
assert_contains "${RAW[0]}" "ERROR XAC_EVERSION" "version 2 gets EVERSION"
raw "$HELLO" "$HELLO" "$BEGIN"
assert_contains "${RAW[1]}" "ERROR XAC_EPROTO" "a second HELLO gets EPROTO"
assert_contains "${RAW[2]}" "BEGUN $IT_NODE." "the session stays open after a second HELLO"
still_works "a second HELLO"

it_log "unknown resource"
raw "$HELLO" "$BEGIN" "$(exec_frame nosuch "SELECT 1")" "$(exec_frame bank_a "SELECT 1")" "$COMMIT"
assert_contains "${RAW[2]}" "ERROR XAC_ERESOURCE" "an unknown resource gets ERESOURCE"
assert_contains "${RAW[2]}" "nosuch" "ERESOURCE names the resource"
assert_contains "${RAW[3]}" "ERROR XAC_EROLLBACK resource=nosuch" \
    "the transaction is rollback-only after ERESOURCE"
assert_contains "${RAW[4]}" "OUTCOME 1 resource=nosuch" "and its pipelined COMMIT rolls back"
run_xac "nosuch: SELECT 1"
assert_ne 0 "$XAC_RC" "xac exit code for an unknown resource"
assert_contains "$XAC_OUT" "nosuch" "xac names the unknown resource"
still_works "an unknown resource"

it_log "SQL errors"
raw "$HELLO" "$BEGIN" "$(exec_frame bank_a "SELEC 1")" "$(exec_frame bank_a "SELECT 1")" "$COMMIT"
assert_contains "${RAW[2]}" "ERROR XAC_ESQL resource=bank_a" "bad SQL on MariaDB gets ESQL naming bank_a"
assert_contains "${RAW[2]}" "1064" "with MariaDB's error number (1064)"
assert_contains "${RAW[3]}" "ERROR XAC_EROLLBACK" "the transaction is rollback-only after ESQL"
assert_contains "${RAW[4]}" "OUTCOME 1 resource=bank_a" "its COMMIT rolls back and names bank_a"
raw "$HELLO" "$BEGIN" "$(exec_frame bank_b "SELEC 1")"
assert_contains "${RAW[2]}" "ERROR XAC_ESQL resource=bank_b" "bad SQL on PostgreSQL gets ESQL naming bank_b"
assert_contains "${RAW[2]}" "42601" "with PostgreSQL's SQLSTATE (42601 syntax error)"
raw "$HELLO" "$BEGIN" "$(exec_frame bank_c "SELEC 1")"
assert_contains "${RAW[2]}" "ERROR XAC_ESQL resource=bank_c" "bad SQL via ODBC mysql gets ESQL naming bank_c"
assert_contains "${RAW[2]}" "1064" "with MariaDB's error number (1064)"
still_works "SQL errors"

it_log "state errors"
raw "$HELLO" "$COMMIT" "$BEGIN" "$BEGIN" "$(frame 05 "")" "$(frame 05 "")"
assert_contains "${RAW[1]}" "ERROR XAC_ESTATE" "COMMIT without a transaction gets ESTATE"
assert_contains "${RAW[3]}" "ERROR XAC_ESTATE" "a second BEGIN gets ESTATE"
assert_contains "${RAW[4]}" "OUTCOME 1" "ROLLBACK answers OUTCOME 1"
assert_contains "${RAW[5]}" "ERROR XAC_ESTATE" "ROLLBACK without a transaction gets ESTATE"
still_works "state errors"

stop_xacd
it_pass
