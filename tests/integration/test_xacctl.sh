#!/usr/bin/env bash
# xacctl, offline: refuses while xacd holds the journal; after a crash it lists
# this node's in-doubt branches with the journal's decision and `recover`
# resolves them (commit after the decision, roll back before it) with xacd
# still stopped, so that the restarted xacd finds nothing left to do.
. "$(dirname "$0")/lib.sh"
it_setup
T=it_xacctl
it_drop_tables() { drop_accounts $T; }

run_ctl() { # ARGS...: sets CTL_RC and CTL_OUT (stdout + stderr)
    CTL_RC=0
    CTL_OUT=$("$XACCTL_BIN" "$@" 2>&1) || CTL_RC=$?
    printf '%s\n' "$CTL_OUT" | sed "s/^/[$IT_NAME]   xacctl: /"
}

it_log "usage and help"
run_ctl
assert_eq 2 "$CTL_RC" "no command: exit 2"
run_ctl -c "$IT_CONF" frobnicate
assert_eq 2 "$CTL_RC" "unknown command: exit 2"
run_ctl --help
assert_eq 0 "$CTL_RC" "--help: exit 0"
assert_contains "$CTL_OUT" "list" "--help names list"
assert_contains "$CTL_OUT" "recover" "--help names recover"
assert_contains "$CTL_OUT" "offline" "--help says it is offline only"
run_ctl -c "$IT_DIR/no-such.conf" list
assert_eq 1 "$CTL_RC" "missing config: exit 1"

it_log "refuses while xacd runs"
make_accounts $T 100
start_xacd
run_ctl -c "$IT_CONF" list
assert_eq 1 "$CTL_RC" "list while xacd runs: exit 1"
assert_contains "$CTL_OUT" "xacd is running" "list says xacd is running"
run_ctl -c "$IT_CONF" recover
assert_eq 1 "$CTL_RC" "recover while xacd runs: exit 1"
assert_contains "$CTL_OUT" "xacd is running" "recover says xacd is running"
stop_xacd

# crash_then_recover POINT EXPECT: xacd dies at POINT during a three-resource
# transfer; xacctl list shows the branches, xacctl recover resolves them.
crash_then_recover() {
    local point=$1 expect=$2 decision
    it_log "---- crash at $point, then xacctl recover"
    make_accounts $T 100
    start_xacd XAC_CRASH_AT="$point"
    run_xac "bank_a: UPDATE $T SET balance = balance - 20 WHERE id = 1" \
        "bank_b: UPDATE $T SET balance = balance + 10 WHERE id = 1" \
        "bank_c: UPDATE $T SET balance = balance + 10 WHERE id = 1"
    wait_xacd_crash
    wait_mysql_sessions_gone
    local gtrid
    gtrid=$(printf '%s\n' "$XAC_OUT" | grep -o "$IT_NODE\.[0-9a-f]*\.[0-9a-f]*" | head -1 || true)
    [ -n "$gtrid" ] || fail "$point: no gtrid in the xac output"

    run_ctl -c "$IT_CONF" list
    assert_eq 0 "$CTL_RC" "$point: list exit code"
    if [ "$expect" = committed ]; then decision="committed"; else decision="none: will roll back"; fi
    local n
    n=$(printf '%s\n' "$CTL_OUT" | grep -F "$gtrid" | grep -cF "$decision" || true)
    assert_eq 3 "$n" "$point: three branches of $gtrid listed as '$decision'"

    run_ctl -c "$IT_CONF" recover
    assert_eq 0 "$CTL_RC" "$point: recover exit code"
    if [ "$expect" = committed ]; then
        assert_contains "$CTL_OUT" "committed:       3" "$point: recover committed 3 branches"
        assert_contains "$CTL_OUT" "END written:     1" "$point: recover wrote the END record"
        assert_eq "80 110 110" "$(bal_a $T) $(bal_b $T) $(bal_c $T)" "$point: balances committed"
    else
        assert_contains "$CTL_OUT" "rolled back:     3" "$point: recover rolled back 3 branches"
        assert_eq "100 100 100" "$(bal_a $T) $(bal_b $T) $(bal_c $T)" "$point: balances unchanged"
    fi
    assert_no_prepared "$point: after xacctl recover"

    run_ctl -c "$IT_CONF" list
    assert_eq 0 "$CTL_RC" "$point: list after recover"
    n=$(printf '%s\n' "$CTL_OUT" | grep -cF "$gtrid" || true)
    assert_eq 0 "$n" "$point: nothing of $gtrid left to list"

    # The restarted xacd has nothing left to recover.
    start_xacd
    local acted
    acted=$(awk '/^==== start_xacd/ { n = 0 } /recovery: (committed|rolled back) gtrid/ { n++ } END { print n + 0 }' "$IT_LOG")
    assert_eq 0 "$acted" "$point: xacd's own recovery found nothing left to resolve"
    stop_xacd
}

crash_then_recover before-decision rolled_back
crash_then_recover after-decision committed
it_pass
