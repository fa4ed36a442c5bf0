#!/usr/bin/env bash
# libxac's deferred BEGIN (XAC_BEGIN_DEFER) against a real xacd: the BEGIN
# rides in the same write as the first request, so a transaction costs one
# round trip less; a BEGIN that xacd refuses is reported at that request and
# the session stays in step; timeouts still fire. Deferred EXECs
# (XAC_EXEC_DEFER) ride with the COMMIT; one that fails (bad SQL, unknown
# resource) makes that COMMIT roll back. prog_defer_begin does the
# checks through a relay that counts round trips; this script checks what
# reached MariaDB.
. "$(dirname "$0")/lib.sh"
it_setup
T=it_defer_begin
it_drop_tables() { drop_accounts $T; }
make_accounts $T 100
start_xacd
PROG=$XAC_BUILD_DIR/tests/prog_defer_begin
[ -x "$PROG" ] || fail "$PROG is missing: build the project first"

OUT=$("$PROG" $T "$IT_DIR/relay.sock" 2>&1) && RC=0 || RC=$?
printf '%s\n' "$OUT" | sed "s/^/[$IT_NAME]   prog: /"
assert_eq 0 "$RC" "prog_defer_begin exit status"
assert_contains "$OUT" "ALL OK" "every check of prog_defer_begin held"
DELTA=$(printf '%s\n' "$OUT" | sed -n 's/^EXPECT_BALANCE_DELTA //p')
[ -n "$DELTA" ] || fail "prog_defer_begin printed no EXPECT_BALANCE_DELTA"
assert_eq "$((100 + DELTA))" "$(bal_a $T)" \
    "bank_a balance: exactly the committed transactions' amounts (no rolled-back one, no dropped EXEC)"
assert_no_prepared "after the run"
grep "the last statement on bank_a with its prepare in one round trip" "$IT_LOG" > /dev/null ||
    fail "xacd did not prepare bank_a's branch with its statement when another resource followed"
assert_xacd_alive "the run"
stop_xacd
it_pass
