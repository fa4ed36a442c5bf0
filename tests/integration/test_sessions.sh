#!/usr/bin/env bash
# Sessions end to end: a client that goes away mid-transaction (exits, or is
# SIGKILLed) has its transaction rolled back and its row locks released; a
# transaction that outlives its timeout is rolled back by xacd on its own and
# its session stays usable; and the optional TCP listener serves transfers
# alongside the Unix socket. Lock checks use NOWAIT, so a leaked lock fails
# the test at once instead of hanging it.
. "$(dirname "$0")/lib.sh"
it_setup
T=it_sessions
it_drop_tables() { drop_accounts $T; }
ABANDON_BIN=$XAC_BUILD_DIR/tests/prog_abandon
[ -x "$ABANDON_BIN" ] || fail "$ABANDON_BIN is missing: build the project first"

# wait_not_active GTRID: xacd notices a vanished client a moment after it
# dies; waits (bounded) until the transaction is no longer ACTIVE and prints
# its state.
wait_not_active() {
    local st=""
    for _ in $(seq 1 100); do
        st=$(state_of "$1")
        [ "$st" != ACTIVE ] && break
        sleep 0.1
    done
    printf '%s\n' "$st"
}

# assert_rows_unlocked WHAT: account 1 of $T can be locked at once on bank_a
# and bank_b (NOWAIT: a lock still held is an error, not a wait).
assert_rows_unlocked() {
    local out
    out=$(my_sql "$XAC_TEST_MYSQL_DB" "SELECT balance FROM $T WHERE id = 1 FOR UPDATE NOWAIT" 2>&1) ||
        fail "$1: the bank_a row of account 1 is still locked: $out"
    out=$(pg_sql "SELECT balance FROM $T WHERE id = 1 FOR UPDATE NOWAIT" 2>&1) ||
        fail "$1: the bank_b row of account 1 is still locked: $out"
    it_log "ok: $1: rows of account 1 are not locked on bank_a nor bank_b"
}

# transfer_commits WHAT A B: moves 1 from bank_a to bank_b, must commit, and
# the balances must then be A and B.
transfer_commits() {
    run_xac -T 10000 "bank_a: UPDATE $T SET balance = balance - 1 WHERE id = 1" \
        "bank_b: UPDATE $T SET balance = balance + 1 WHERE id = 1"
    expect_committed "$1: a transfer on the same rows"
    assert_eq "$2 $3" "$(bal_a $T) $(bal_b $T)" "$1: balances a b after the new transfer"
}

make_accounts $T 100
start_xacd

# ------------------------------------------------ client exits mid-transaction
it_log "---- a client exits with a transaction open (locks on bank_a and bank_b)"
out=$("$ABANDON_BIN" $T exit 2>&1) || fail "prog_abandon exit: status $?: $out"
printf '%s\n' "$out" | sed "s/^/[$IT_NAME]   prog: /"
gtrid=$(printf '%s\n' "$out" | sed -n 's/^GTRID //p')
[ -n "$gtrid" ] || fail "prog_abandon did not print the gtrid of its transaction: $out"
assert_eq ROLLED_BACK "$(wait_not_active "$gtrid")" "exit: state of the abandoned transaction"
assert_eq "100 100" "$(bal_a $T) $(bal_b $T)" "exit: balances a b unchanged"
assert_rows_unlocked "exit"
assert_no_prepared "exit"
grep -q "closed with transaction $gtrid open" "$IT_LOG" ||
    fail "exit: xacd's log does not say it rolled back $gtrid when the session closed"
transfer_commits "exit" 99 101

# ------------------------------------------------ client SIGKILLed
it_log "---- a client is killed (SIGKILL) with a transaction open"
"$ABANDON_BIN" $T hang > "$IT_DIR/hang.out" 2>&1 &
prog_pid=$!
for _ in $(seq 1 100); do
    grep -q '^GTRID ' "$IT_DIR/hang.out" && break
    kill -0 $prog_pid 2> /dev/null || break
    sleep 0.1
done
gtrid=$(sed -n 's/^GTRID //p' "$IT_DIR/hang.out")
if [ -z "$gtrid" ]; then
    kill -9 $prog_pid 2> /dev/null || true
    fail "prog_abandon hang did not hold its locks within 10 s: $(cat "$IT_DIR/hang.out")"
fi
assert_eq ACTIVE "$(state_of "$gtrid")" "kill: the transaction is open while its client lives"
if my_sql "$XAC_TEST_MYSQL_DB" "SELECT balance FROM $T WHERE id = 1 FOR UPDATE NOWAIT" > /dev/null 2>&1; then
    kill -9 $prog_pid 2> /dev/null || true
    fail "kill: the bank_a row is not locked while the transaction is open (the lock check proves nothing)"
fi
if pg_sql "SELECT balance FROM $T WHERE id = 1 FOR UPDATE NOWAIT" > /dev/null 2>&1; then
    kill -9 $prog_pid 2> /dev/null || true
    fail "kill: the bank_b row is not locked while the transaction is open (the lock check proves nothing)"
fi
it_log "ok: kill: the rows are locked on bank_a and bank_b while the client lives"
{
    kill -9 $prog_pid
    wait $prog_pid || true
} 2> /dev/null
assert_eq ROLLED_BACK "$(wait_not_active "$gtrid")" "kill: state of the killed client's transaction"
assert_eq "99 101" "$(bal_a $T) $(bal_b $T)" "kill: balances a b unchanged"
assert_rows_unlocked "kill"
assert_no_prepared "kill"
transfer_commits "kill" 98 102

# ------------------------------------------------ transaction timeout
it_log "---- BEGIN with a 500 ms timeout, idle 2 s, then EXEC"
out=$("$ABANDON_BIN" $T timeout-exec 2>&1) || fail "prog_abandon timeout-exec: status $?: $out"
printf '%s\n' "$out" | sed "s/^/[$IT_NAME]   prog: /"
gtrid=$(printf '%s\n' "$out" | sed -n 's/^GTRID //p')
[ -n "$gtrid" ] || fail "timeout-exec: no gtrid printed: $out"
assert_contains "$out" "EXEC XAC_ETIMEOUT " "timeout-exec: EXEC after the timeout gets XAC_ETIMEOUT"
assert_contains "$(printf '%s\n' "$out" | grep '^EXEC ')" "timed out" "timeout-exec: the EXEC error says it timed out"
assert_contains "$out" "COMMIT XAC_EROLLBACK " "timeout-exec: the COMMIT reports a rollback"
assert_contains "$out" "STATUS ROLLED_BACK" "timeout-exec: xacd reports the transaction ROLLED_BACK"
assert_contains "$out" "BEGIN-AGAIN OK " "timeout-exec: the session can begin a new transaction"
assert_contains "$out" "ROLLBACK-AGAIN OK " "timeout-exec: and roll it back"
assert_eq "98 102" "$(bal_a $T) $(bal_b $T)" "timeout-exec: balances a b unchanged"
assert_rows_unlocked "timeout-exec"
assert_no_prepared "timeout-exec"
grep -q "gtrid $gtrid .*timed out" "$IT_LOG" || fail "timeout-exec: xacd's log does not report the timeout of $gtrid"
transfer_commits "timeout-exec" 97 103

it_log "---- BEGIN with a 500 ms timeout, idle 2 s, then COMMIT"
out=$("$ABANDON_BIN" $T timeout-commit 2>&1) || fail "prog_abandon timeout-commit: status $?: $out"
printf '%s\n' "$out" | sed "s/^/[$IT_NAME]   prog: /"
gtrid=$(printf '%s\n' "$out" | sed -n 's/^GTRID //p')
[ -n "$gtrid" ] || fail "timeout-commit: no gtrid printed: $out"
line=$(printf '%s\n' "$out" | grep '^COMMIT ' || true)
assert_contains "$line" "COMMIT XAC_EROLLBACK " "timeout-commit: COMMIT after the timeout rolls back"
assert_contains "$line" "timed out" "timeout-commit: the rollback message says it timed out"
assert_contains "$out" "STATUS ROLLED_BACK" "timeout-commit: xacd reports the transaction ROLLED_BACK"
assert_eq "97 103" "$(bal_a $T) $(bal_b $T)" "timeout-commit: balances a b unchanged"
assert_rows_unlocked "timeout-commit"
assert_no_prepared "timeout-commit"
transfer_commits "timeout-commit" 96 104
assert_xacd_alive "the abandoned and timed-out transactions"
stop_xacd

# ------------------------------------------------ TCP listener
it_log "---- listen.tcp next to the Unix socket"
# Below the kernel's ephemeral range: a port there can be the local end of
# some client's connection, which a listener cannot bind although nothing
# answers on it.
port=""
eph_lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2> /dev/null || echo 32768)
for p in $(seq $((20000 + RANDOM % (eph_lo - 20500))) $((eph_lo - 1))); do
    if ! (exec 3<> "/dev/tcp/127.0.0.1/$p") 2> /dev/null; then
        port=$p
        break
    fi
done
[ -n "$port" ] || fail "no free TCP port found"
cp "$IT_CONF" "$IT_DIR/tcp.conf"
sed -i "s|^listen = { unix = \"$IT_SOCK\"; };|listen = { unix = \"$IT_SOCK\"; tcp = \"127.0.0.1:$port\"; };|" \
    "$IT_DIR/tcp.conf"
grep -q "tcp = \"127.0.0.1:$port\"" "$IT_DIR/tcp.conf" ||
    fail "could not add listen.tcp to the config (has it_write_config's listen line changed?)"
IT_START_CONF=$IT_DIR/tcp.conf start_xacd
run_xac -a "tcp:127.0.0.1:$port" "bank_a: UPDATE $T SET balance = balance - 5 WHERE id = 1" \
    "bank_b: UPDATE $T SET balance = balance + 5 WHERE id = 1"
expect_committed "a transfer over tcp:127.0.0.1:$port"
assert_eq "91 109" "$(bal_a $T) $(bal_b $T)" "balances a b after the TCP transfer"
gtrid=$(xac_gtrid)
run_xac -a "tcp:127.0.0.1:$port" --status "$gtrid"
assert_eq "$gtrid COMMITTED" "$XAC_LAST" "status over TCP"
run_xac "bank_a: UPDATE $T SET balance = balance - 1 WHERE id = 1" \
    "bank_b: UPDATE $T SET balance = balance + 1 WHERE id = 1"
expect_committed "a transfer over the Unix socket of the same xacd"
assert_eq "90 110" "$(bal_a $T) $(bal_b $T)" "balances a b after the Unix-socket transfer"
run_xac -a "tcp:127.0.0.1:$port" -t wrong-token "bank_a: SELECT 1"
assert_eq 3 "$XAC_RC" "a wrong token over TCP is refused (exit 3)"
assert_no_prepared "TCP"
stop_xacd
it_pass
