#!/usr/bin/env bash
# Crash tests: xacd kills itself (SIGKILL) at each crash point of the commit
# protocol in the middle of a transfer; after a restart, whose recovery pass
# runs before "xacd ready", every resource must agree: all committed (once the
# decision was durable) or all rolled back (before it), and no prepared branch
# of ours may be left anywhere. The journal writer's own steps are crash points
# too: killed after the batch with the COMMIT record was written but before
# its fdatasync, the record may or may not be found on replay (a killed
# process leaves it in the page cache, a power cut might not), so both sides
# only have to agree; killed after the fdatasync, it must be committed.
. "$(dirname "$0")/lib.sh"
it_setup
T=it_crash
it_drop_tables() { drop_accounts $T; }

# crash_case POINT EXPECT RESOURCES: EXPECT is committed, rolled_back or
# either (all-or-nothing, whichever); RESOURCES are the resources the transfer
# credits (bank_a is debited).
crash_case() {
    local point=$1 expect=$2
    shift 2
    local credit=("$@") n=$#
    it_log "---- crash at $point, bank_a -> ${credit[*]}"
    make_accounts $T 100
    local args=("bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i $((10 * n)) -i 1)
    local r
    for r in "${credit[@]}"; do
        args+=("$r: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 10 -i 1)
    done
    start_xacd XAC_CRASH_AT="$point"
    run_xac "${args[@]}"
    assert_eq 3 "$XAC_RC" "$point: xac exit code when xacd dies during COMMIT (outcome unknown)"
    wait_xacd_crash
    it_log "ok: $point: xacd died of SIGKILL"
    grep -q "$point" "$IT_LOG" || fail "$point: the log does not mention the armed crash point"
    wait_mysql_sessions_gone
    check_xacctl_list "$point" "${credit[@]}"

    start_xacd
    local a b c
    a=$(bal_a $T)
    b=$(bal_b $T)
    c=$(bal_c $T)
    local want_a=100 want_b=100 want_c=100
    if [ "$expect" = either ]; then
        # bank_a decides which; every credited resource must then follow.
        case $a in
        $((100 - 10 * n))) expect=committed ;;
        100) expect=rolled_back ;;
        *) fail "$point: bank_a holds $a: neither committed nor rolled back" ;;
        esac
        it_log "$point: the transfer was $expect after recovery"
    fi
    if [ "$expect" = committed ]; then
        want_a=$((100 - 10 * n))
        for r in "${credit[@]}"; do
            case $r in bank_b) want_b=110 ;; bank_c) want_c=110 ;; esac
        done
    fi
    assert_eq "$want_a $want_b $want_c" "$a $b $c" "$point: balances a b c after recovery ($expect)"
    assert_eq 300 $((a + b + c)) "$point: no money appeared or vanished"
    assert_no_prepared "$point"
    it_log "ok: $point: no prepared branch left"

    # The recovered transaction does not block new ones on the same rows.
    run_xac "bank_a: UPDATE $T SET balance = balance - 1 WHERE id = 1" \
        "bank_b: UPDATE $T SET balance = balance + 1 WHERE id = 1"
    expect_committed "$point: a transfer after recovery"
    assert_eq "$((a - 1)) $((b + 1))" "$(bal_a $T) $(bal_b $T)" "$point: balances after one more transfer"
    stop_xacd
}

# check_xacctl_list POINT RESOURCES: while xacd is down, the DBA tool lists the
# branches the crash left in doubt with the journal's decision.
check_xacctl_list() {
    local point=$1
    shift
    local n=$(($# + 1)) gtrid lrc=0 list ours nours ncommit nroll
    gtrid=$(printf '%s\n' "$XAC_OUT" | grep -o "$IT_NODE\.[0-9a-f]*\.[0-9a-f]*" | head -1 || true)
    [ -n "$gtrid" ] || fail "$point: xac did not print the gtrid of the interrupted transaction"
    # Only the resources of this transfer, so that the listing covers all of them.
    it_write_config "$IT_DIR/case.conf" bank_a "$@"
    list=$("$XACCTL_BIN" -c "$IT_DIR/case.conf" list 2>&1) || lrc=$?
    printf '%s\n' "$list" | sed "s/^/[$IT_NAME]   xacctl: /"
    assert_eq 0 "$lrc" "$point: xacctl list exit code"
    ours=$(printf '%s\n' "$list" | grep -F "$gtrid" || true)
    nours=$(printf '%s' "$ours" | grep -c . || true)
    ncommit=$(printf '%s' "$ours" | grep -c 'committed' || true)
    nroll=$(printf '%s' "$ours" | grep -c 'will roll back' || true)
    local want
    case $point in
    after-first-prepare) want=$([ "$nours" -ge 1 ] && [ "$nroll" = "$nours" ] && echo y) ;;
    before-decision) want=$([ "$nours" = "$n" ] && [ "$nroll" = "$n" ] && echo y) ;;
    after-decision) want=$([ "$nours" = "$n" ] && [ "$ncommit" = "$n" ] && echo y) ;;
    after-first-commit) want=$([ "$nours" -lt "$n" ] && [ "$ncommit" = "$nours" ] && echo y) ;;
    before-end) want=$([ "$nours" = 0 ] && echo y) ;;
    journal-batch-written) want=$([ "$nours" = "$n" ] && { [ "$ncommit" = "$n" ] || [ "$nroll" = "$n" ]; } && echo y) ;;
    journal-batch-synced) want=$([ "$nours" = "$n" ] && [ "$ncommit" = "$n" ] && echo y) ;;
    esac
    [ "$want" = y ] || fail "$point: xacctl list shows $nours branch(es) of $gtrid ($ncommit committed, $nroll to roll back) out of $n"
    it_log "ok: $point: xacctl list shows $nours in-doubt branch(es): $ncommit committed, $nroll to roll back"
}

crash_case after-first-prepare rolled_back bank_b
crash_case before-decision rolled_back bank_b
crash_case after-decision committed bank_b
crash_case after-first-commit committed bank_b
crash_case before-end committed bank_b

# Three branches, two of them on one MariaDB server (bank_a and bank_c).
crash_case after-first-prepare rolled_back bank_b bank_c
crash_case before-decision rolled_back bank_b bank_c
crash_case after-decision committed bank_b bank_c
crash_case after-first-commit committed bank_b bank_c
crash_case before-end committed bank_b bank_c

# The journal writer's steps, during a two-resource commit.
crash_case journal-batch-written either bank_b
crash_case journal-batch-synced committed bank_b
crash_case journal-batch-written either bank_b bank_c
crash_case journal-batch-synced committed bank_b bank_c

it_log "a crash point fires only for transactions with more than one branch"
make_accounts $T 100
start_xacd XAC_CRASH_AT=before-decision
run_xac "bank_a: UPDATE $T SET balance = balance - 1 WHERE id = 1"
expect_committed "one-phase commit with before-decision armed"
assert_xacd_alive "a one-resource commit"
assert_eq 99 "$(bal_a $T)" "bank_a after the one-phase commit"
stop_xacd
it_pass
