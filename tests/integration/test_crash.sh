#!/usr/bin/env bash
# Crash tests: xacd kills itself (SIGKILL) at every crash point it knows, in
# the middle of the work that reaches that point, and a restart must leave
# every resource with the same outcome and no prepared branch of ours. The
# list comes from the binary (`xacd --list-crash-points`): a point this test
# has no case for, or a case whose xacd does not die of SIGKILL at its point
# (logged), fails the test. Each point runs twice, once over two resources
# (bank_a, bank_b: MariaDB and PostgreSQL) and once over three (plus bank_d,
# a second MariaDB database through the mysql driver); the one-resource
# points run on bank_a and then on bank_b.
#
# What the restart must show, by point:
#   - before the decision (after-start .. before-decision, before-rollback,
#     after-first-rollback, before-one-phase, after-early-prepare): rolled
#     back everywhere; after-early-prepare and, once more, before-decision,
#     after-decision and the lrc-*-commit points run with `xac --pipeline`,
#     so that xacd prepares the branches with their statements (checked in
#     its log);
#   - after it (after-decision .. before-end, journal-batch-synced,
#     after-one-phase): committed everywhere;
#   - journal-batch-written: the record was written but not synced, so a
#     killed process may or may not have it on disk: all or nothing;
#   - the journal's rotation steps (segment-created, -switched, -deleted):
#     8 clients insert ids on every resource with 64 KiB segments until xacd
#     dies at the first rotation; every id is then on every resource or on
#     none, and every acknowledged id is there;
#   - journal-carried: a transfer is stranded at after-decision, xacd
#     restarts with bank_b unreachable (so the COMMIT stays live) and load on
#     the others until the second rotation carries that COMMIT forward; after
#     a clean restart the transfer is committed everywhere and the load is
#     all-or-nothing;
#   - rec-*: a transfer is stranded (at after-decision for the commit and end
#     steps, at after-prepare-all for the rollback steps), xacd restarts and
#     dies inside recovery, then restarts clean: committed / rolled back.
#   - lrc-* (a transfer over bank_a, bank_b and bank_m, SQL Server as the last
#     resource): lrc-before-commit rolls back everywhere, lrc-after-commit
#     (committed on SQL Server, no COMMIT record) must end committed
#     everywhere; lrc-before-forget (ENDs written, markers not removed) ends
#     committed and the marker is adopted and removed after the restart;
#     rec-after-fence (recovery fenced the gtrid on SQL Server, the branches
#     not rolled back; stranded at lrc-before-commit) rolls back;
#     rec-after-adopt (recovery wrote the COMMIT record a marker stands for;
#     stranded at lrc-after-commit) commits.
# While xacd is down after a 2PC crash, `xacctl list` must show the stranded
# branches with the journal's decision.
#
# XAC_CRASH_ONLY=REGEX runs only the points matching REGEX (for debugging).
. "$(dirname "$0")/lib.sh"
it_setup
T=it_crash
L=it_crash_load
it_drop_tables() {
    pg_sql "DROP TABLE IF EXISTS ${T}_child" > /dev/null 2>&1 || true
    [ -z "${XAC_TEST_MSSQL_HOST:-}" ] || ms_sql "IF OBJECT_ID(N'$T', N'U') IS NOT NULL DROP TABLE $T" > /dev/null 2>&1 || true
    drop_accounts $T
    drop_accounts $L
}
SEG=65536
CASE=0
TIMES=()

# ------------------------------------------------------------------ xacd

# new_case NAME RESOURCE...: a fresh journal and config for one case, so that
# a case never inherits another's journal (nor its segment size).
new_case() {
    CASE=$((CASE + 1))
    CASE_NAME=$1
    shift
    CASE_START=$(date +%s%N)
    it_log "---- case $CASE: $CASE_NAME"
    IT_JOURNAL=$IT_DIR/journal-$CASE
    it_write_config "$IT_CONF" "$@"
    unset IT_START_CONF
}

end_case() {
    local ms=$((($(date +%s%N) - CASE_START) / 1000000))
    TIMES+=("$(printf '%6d ms  %s' "$ms" "$CASE_NAME")")
    it_log "ok: case $CASE ($CASE_NAME) passed in $ms ms"
}

# start_xacd_nowait [VAR=VALUE...]: starts xacd without waiting for "xacd
# ready": a crash point in the start-up recovery kills it before that.
start_xacd_nowait() {
    IT_MY_SESSIONS=$(my_session_ids || true)
    echo "==== start_xacd_nowait $* ($(date -u +%T))" >> "$IT_LOG"
    env "$@" "$XACD_BIN" -c "${IT_START_CONF:-$IT_CONF}" >> "$IT_LOG" 2>&1 &
    IT_XACD_PID=$!
}

# log_mark: the log's line count, so that crashed_at reads only this run.
log_mark() { LOG_MARK=$(wc -l < "$IT_LOG"); }

# crashed_at POINT: xacd died of SIGKILL (bounded wait) and logged that it
# crashed at POINT; then waits until MariaDB has dropped its sessions.
crashed_at() {
    local point=$1 i
    for i in $(seq 1 300); do
        xacd_alive || break
        sleep 0.1
    done
    if xacd_alive; then
        kill_xacd
        fail "$CASE_NAME: crash point $point was not reached: xacd still ran 30 s after the work that should reach it"
    fi
    wait_xacd_crash
    tail -n +"$((LOG_MARK + 1))" "$IT_LOG" | grep "crashing at '$point'" > /dev/null ||
        fail "$CASE_NAME: xacd died of SIGKILL but did not log the crash at '$point'"
    it_log "ok: $CASE_NAME: xacd died of SIGKILL at $point"
    wait_mysql_sessions_gone
}

# not_reached_check POINT: after the work that should reach POINT, xacd must
# be dead or dying; a live xacd means the point was not reached.
not_reached_check() {
    local i
    for i in $(seq 1 50); do
        xacd_alive || return 0
        sleep 0.1
    done
    fail "$CASE_NAME: crash point $1 was not reached: xacd is still running after the work that should reach it"
}

# -------------------------------------------------------------- outcomes

# wait_settled WHAT: recovery may finish after "xacd ready"; waits (bounded)
# until no prepared branch of ours is left.
wait_settled() {
    local i
    for i in $(seq 1 150); do
        [ -n "$(my_prepared)$(pg_prepared)" ] || return 0
        sleep 0.2
    done
    assert_no_prepared "$1 (30 s after the restart)"
}

# check_transfer WHAT EXPECT N RESOURCE...: the balances after the transfer
# that debited bank_a by 10 * N and credited each RESOURCE by 10. EXPECT is
# committed, rolled_back or either (bank_a decides, the others must follow).
check_transfer() {
    local what=$1 expect=$2 n=$3
    shift 3
    wait_settled "$what"
    local a b c r want_a=100 want_b=100 want_c=100
    a=$(bal_a $T)
    b=$(bal_b $T)
    c=$(bal_c $T)
    if [ "$expect" = either ]; then
        case $a in
        $((100 - 10 * n))) expect=committed ;;
        100) expect=rolled_back ;;
        *) fail "$what: bank_a holds $a: neither committed nor rolled back" ;;
        esac
        it_log "$what: the transfer was $expect after recovery"
    fi
    if [ "$expect" = committed ]; then
        want_a=$((100 - 10 * n))
        for r in "$@"; do
            case $r in bank_b) want_b=110 ;; bank_c | bank_d) want_c=110 ;; esac
        done
    fi
    assert_eq "$want_a $want_b $want_c" "$a $b $c" "$what: balances bank_a bank_b $XAC_TEST_MYSQL_DB2 after recovery ($expect)"
    assert_no_prepared "$what"
}

# check_xacctl_list POINT N RESOURCE...: while xacd is down, the DBA tool
# lists the branches the crash left in doubt with the journal's decision (the
# wording may be "committed" or "... roll back ...").
check_xacctl_list() {
    local point=$1 n=$2
    shift 2
    local gtrid lrc=0 list ours nours ncommit nroll
    gtrid=$STRAND_GTRID
    [ -n "$gtrid" ] || fail "$point: no gtrid of the interrupted transaction (from xac, or xacd's log)"
    list=$("$XACCTL_BIN" -c "$IT_CONF" list 2>&1) || lrc=$?
    printf '%s\n' "$list" | sed "s/^/[$IT_NAME]   xacctl: /"
    assert_eq 0 "$lrc" "$point: xacctl list exit code"
    ours=$(printf '%s\n' "$list" | grep -F "$gtrid" || true)
    nours=$(printf '%s' "$ours" | grep -c . || true)
    ncommit=$(printf '%s' "$ours" | grep -c 'committed' || true)
    nroll=$(printf '%s' "$ours" | grep -c 'roll back' || true)
    local want=""
    case $point in
    after-start | before-end | after-commit-all) want=$([ "$nours" = 0 ] && echo y) ;;
    after-first-prepare | after-early-prepare) want=$([ "$nours" -ge 1 ] && [ "$nroll" = "$nours" ] && echo y) ;;
    after-prepare-all | before-decision) want=$([ "$nours" = "$n" ] && [ "$nroll" = "$n" ] && echo y) ;;
    after-decision | journal-batch-synced) want=$([ "$nours" = "$n" ] && [ "$ncommit" = "$n" ] && echo y) ;;
    lrc-before-commit) want=$([ "$nours" = "$n" ] && [ "$nroll" = "$n" ] && echo y) ;;
    lrc-after-commit) want=$([ "$nours" = "$n" ] && [ "$ncommit" = "$n" ] && echo y) ;;
    after-first-commit) want=$([ "$nours" -lt "$n" ] && [ "$ncommit" = "$nours" ] && echo y) ;;
    journal-batch-written) want=$([ "$nours" = "$n" ] && { [ "$ncommit" = "$n" ] || [ "$nroll" = "$n" ]; } && echo y) ;;
    *) fail "check_xacctl_list: no expectation for $point" ;;
    esac
    [ "$want" = y ] || fail "$point: xacctl list shows $nours branch(es) of $gtrid ($ncommit committed, $nroll to roll back) out of $n"
    it_log "ok: $point: xacctl list shows $nours in-doubt branch(es): $ncommit committed, $nroll to roll back"
}

# ------------------------------------------------------------- scenarios

# transfer_args RESOURCE...: xac arguments debiting bank_a by 10 per credited
# RESOURCE and crediting each by 10.
transfer_args() {
    XARGS=("bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i $((10 * $#)) -i 1)
    local r
    for r in "$@"; do
        XARGS+=("$r: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 10 -i 1)
    done
}

# run_stranded POINT: runs XARGS (pipelined when CASE_PIPE is --pipeline)
# against an xacd armed to die at POINT, and sets STRAND_GTRID.
run_stranded() {
    log_mark
    start_xacd XAC_CRASH_AT="$1"
    run_xac ${CASE_PIPE:-} "${XARGS[@]}"
    STRAND_GTRID=$(printf '%s\n' "$XAC_OUT" | grep -o "$IT_NODE\.[0-9a-f]*\.[0-9a-f]*" | head -1 || true)
    if [ -n "${CASE_PIPE:-}" ]; then
        # Pipelined, the client hears nothing before the COMMIT's answer:
        # the gtrid comes from xacd's log, which also shows the branches
        # prepared with their statements.
        local early
        early=$(tail -n +"$((LOG_MARK + 1))" "$IT_LOG" | grep "with its prepare in one round trip" || true)
        [ -n "$early" ] || fail "$CASE_NAME: xacd did not prepare a branch with its statement"
        STRAND_GTRID=$(printf '%s\n' "$early" | grep -o "$IT_NODE\.[0-9a-f]*\.[0-9a-f]*" | head -1)
    fi
}

# strand POINT RESOURCE...: runs a transfer that xacd dies in at POINT.
strand() {
    local point=$1
    shift
    transfer_args "$@"
    run_stranded "$point"
    if [ "$point" = before-end ]; then
        # The END record is written after the reply: the client has its answer.
        assert_eq 0 "$XAC_RC" "$CASE_NAME: xac exit code when xacd dies at $point (after the reply)"
    else
        assert_eq 3 "$XAC_RC" "$CASE_NAME: xac exit code when xacd dies at $point (outcome unknown)"
    fi
    not_reached_check "$point"
    crashed_at "$point"
}

# check_status POINT EXPECT: after the restart, STATUS of the interrupted
# transaction agrees with its outcome (a client whose reply was lost asks it).
check_status() {
    local point=$1 expect=$2 st
    [ -n "$STRAND_GTRID" ] || fail "$point: no gtrid of the interrupted transaction"
    st=$(state_of "$STRAND_GTRID")
    case $expect in
    committed)
        # COMMITTING until recovery's END record, which needs a pass over
        # every resource of the COMMIT record after its branches are done.
        for _ in $(seq 1 50); do
            [ "$st" = COMMITTING ] || break
            sleep 0.2
            st=$(state_of "$STRAND_GTRID")
        done
        assert_eq COMMITTED "$st" "$point: STATUS of $STRAND_GTRID after the restart"
        ;;
    rolled_back) assert_eq UNKNOWN "$st" "$point: STATUS of $STRAND_GTRID after the restart" ;;
    *) it_log "ok: $point: STATUS of $STRAND_GTRID after the restart: $st" ;;
    esac
}

# A transfer over bank_a and the credited resources.
case_transfer() {
    local point=$1 expect=$2
    shift 2
    local n=$(($# + 1))
    new_case "$point, $n resources${CASE_PIPE:+, $CASE_PIPE}" bank_a "$@"
    make_accounts $T 100
    strand "$point" "$@"
    check_xacctl_list "$point" "$n" "$@"
    start_xacd
    check_transfer "$point" "$expect" $# "$@"
    check_status "$point" "$expect"
    # The recovered transaction does not block new ones on the same rows.
    local a b
    a=$(bal_a $T)
    b=$(bal_b $T)
    run_xac "bank_a: UPDATE $T SET balance = balance - 1 WHERE id = 1" \
        "bank_b: UPDATE $T SET balance = balance + 1 WHERE id = 1"
    expect_committed "$point: a transfer after recovery"
    assert_eq "$((a - 1)) $((b + 1))" "$(bal_a $T) $(bal_b $T)" "$point: balances after one more transfer"
    stop_xacd
    end_case
}

# The same transfer, with a PostgreSQL branch that votes no at PREPARE (a
# deferred foreign key): the MariaDB branches are prepared when the rollback
# starts, so a crash there strands them without a decision.
case_vote_no() {
    local point=$1
    shift
    local n=$(($# + 1))
    new_case "$point, $n resources (bank_b votes no)" bank_a "$@"
    pg_sql "DROP TABLE IF EXISTS ${T}_child" > /dev/null
    make_accounts $T 100
    pg_sql "CREATE TABLE ${T}_child (id INT PRIMARY KEY,
        acct INT NOT NULL REFERENCES $T (id) DEFERRABLE INITIALLY DEFERRED)" > /dev/null
    transfer_args "$@"
    XARGS+=("bank_b: INSERT INTO ${T}_child (id, acct) VALUES (?, ?)" -i 1 -i 999)
    log_mark
    start_xacd XAC_CRASH_AT="$point"
    run_xac "${XARGS[@]}"
    assert_eq 3 "$XAC_RC" "$CASE_NAME: xac exit code when xacd dies at $point"
    not_reached_check "$point"
    crashed_at "$point"
    start_xacd
    check_transfer "$point" rolled_back $# "$@"
    assert_eq 0 "$(pg_sql "SELECT COUNT(*) FROM ${T}_child")" "$point: no child row"
    stop_xacd
    pg_sql "DROP TABLE ${T}_child" > /dev/null
    end_case
}

# A transaction on one resource, committed in one phase.
# With --pipeline the COMMIT arrives with the statement, and xacd runs both
# in one query, a local transaction: on MariaDB the UPDATE in autocommit
# mode, on PostgreSQL "BEGIN; UPDATE ...; COMMIT".
case_one_phase() {
    local point=$1 expect=$2 res=$3 pipe=${4:-}
    new_case "$point, one resource ($res${pipe:+, $pipe})" "$res"
    make_accounts $T 100
    log_mark
    start_xacd XAC_CRASH_AT="$point"
    run_xac $pipe "$res: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 7 -i 1
    assert_eq 3 "$XAC_RC" "$CASE_NAME: xac exit code when xacd dies at $point"
    not_reached_check "$point"
    crashed_at "$point"
    if [ -n "$pipe" ]; then
        tail -n +"$((LOG_MARK + 1))" "$IT_LOG" | grep "the statement and the one-phase commit" > /dev/null ||
            fail "$CASE_NAME: xacd did not take the one-query path for the pipelined statement"
    fi
    start_xacd
    wait_settled "$point"
    local want=100 got
    [ "$expect" = committed ] && want=93
    case $res in
    bank_a) got=$(bal_a $T) ;;
    bank_b) got=$(bal_b $T) ;;
    esac
    assert_eq "$want" "$got" "$point: $res balance after the restart ($expect)"
    assert_no_prepared "$point"
    stop_xacd
    end_case
}

# load_until_crash TAG RESOURCE...: 8 clients insert unique ids into $L on
# every RESOURCE, one transaction each, until xacd is gone (or 600 each).
# Acknowledged ids go to $IT_DIR/acked.TAG.
load_until_crash() {
    local tag=$1
    shift
    : > "$IT_DIR/acked.$tag"
    local w pids=()
    for w in 1 2 3 4 5 6 7 8; do
        (
            local i id rc r args
            for i in $(seq 1 600); do
                id=$((w * 1000000 + CASE * 10000 + i))
                args=()
                for r in "$@"; do args+=("$r: INSERT INTO $L (id) VALUES (?)" -i "$id"); done
                rc=0
                "$XAC_BIN" "${args[@]}" > /dev/null 2>&1 || rc=$?
                case $rc in
                0) echo "$id" >> "$IT_DIR/acked.$tag.$w" ;;
                3) break ;;
                esac
            done
        ) &
        pids+=($!)
    done
    for w in "${pids[@]}"; do wait "$w"; done
    cat "$IT_DIR"/acked."$tag".* > "$IT_DIR/acked.$tag" 2> /dev/null || true
    rm -f "$IT_DIR"/acked."$tag".*
    it_log "$CASE_NAME: $(wc -l < "$IT_DIR/acked.$tag") load transactions acknowledged before the crash"
}

make_load_table() {
    local db
    for db in "$XAC_TEST_MYSQL_DB" "$XAC_TEST_MYSQL_DB2"; do
        my_sql "$db" "SET SESSION lock_wait_timeout = 10; DROP TABLE IF EXISTS $L;
            CREATE TABLE $L (id BIGINT PRIMARY KEY) ENGINE=InnoDB" ||
            fail "could not create $L in MariaDB database $db"
    done
    pg_sql "SET lock_timeout = '10s'; DROP TABLE IF EXISTS $L;
        CREATE TABLE $L (id BIGINT PRIMARY KEY)" > /dev/null || fail "could not create $L in PostgreSQL"
}

load_ids() { # RESOURCE: the load's ids on it, sorted
    case $1 in
    bank_a) my_sql "$XAC_TEST_MYSQL_DB" "SELECT id FROM $L" ;;
    bank_b) pg_sql "SELECT id FROM $L" ;;
    bank_c | bank_d) my_sql "$XAC_TEST_MYSQL_DB2" "SELECT id FROM $L" ;;
    esac | sort
}

# check_load TAG RESOURCE...: every id on every RESOURCE or on none, and
# every acknowledged id there.
check_load() {
    local tag=$1 first=$2 r
    shift
    wait_settled "$CASE_NAME"
    load_ids "$first" > "$IT_DIR/ids.$first"
    for r in "$@"; do
        load_ids "$r" > "$IT_DIR/ids.$r"
        cmp -s "$IT_DIR/ids.$first" "$IT_DIR/ids.$r" ||
            fail "$CASE_NAME: ids differ between $first and $r: $(diff "$IT_DIR/ids.$first" "$IT_DIR/ids.$r" | grep '^[<>]' | head -5 | tr '\n' ' ')"
    done
    local missing
    missing=$(sort "$IT_DIR/acked.$tag" | comm -23 - "$IT_DIR/ids.$first" | head -5 | tr '\n' ' ')
    [ -z "$missing" ] || fail "$CASE_NAME: acknowledged ids missing after recovery: $missing"
    it_log "ok: $CASE_NAME: $(wc -l < "$IT_DIR/ids.$first") ids on each of $*, all $(wc -l < "$IT_DIR/acked.$tag") acknowledged ones among them"
    assert_no_prepared "$CASE_NAME"
}

# The journal's rotation steps: load with 64 KiB segments until xacd dies at
# POINT (the first rotation).
case_rotation() {
    local point=$1
    shift
    new_case "$point, $# resources (load, $SEG-byte segments)" "$@"
    echo "journal_segment_size = $SEG;" >> "$IT_CONF"
    make_load_table
    log_mark
    start_xacd XAC_CRASH_AT="$point"
    load_until_crash $CASE "$@"
    not_reached_check "$point"
    crashed_at "$point"
    start_xacd
    check_load $CASE "$@"
    stop_xacd
    end_case
}

# journal-carried: a COMMIT must stay live across two rotations, so bank_b,
# one of its resources, is unreachable meanwhile (its branch stays prepared
# and no END can be written); the load runs on bank_a and bank_d.
case_carried() {
    local point=$1
    shift
    local n=$(($# + 1))
    new_case "$point, $n resources (stranded transfer, load, $SEG-byte segments)" bank_a bank_b bank_d
    echo "journal_segment_size = $SEG;" >> "$IT_CONF"
    sed "s/port = $XAC_TEST_PG_PORT;/port = 1;/" "$IT_CONF" > "$IT_DIR/down.conf"
    grep -q "port = 1;" "$IT_DIR/down.conf" || fail "could not make bank_b unreachable in the config"
    make_accounts $T 100
    make_load_table
    strand after-decision "$@"
    log_mark
    IT_START_CONF=$IT_DIR/down.conf start_xacd XAC_CRASH_AT="$point"
    load_until_crash $CASE bank_a bank_d
    not_reached_check "$point"
    crashed_at "$point"
    start_xacd
    check_transfer "$point" committed $# "$@"
    check_load $CASE bank_a bank_d
    stop_xacd
    end_case
}

# Recovery's steps: strand a transfer at STRAND, restart into a crash at
# POINT inside recovery, restart clean.
case_recovery() {
    local point=$1 strand_at=$2 expect=$3
    shift 3
    local n=$(($# + 1))
    new_case "$point, $n resources (stranded at $strand_at)" bank_a "$@"
    make_accounts $T 100
    strand "$strand_at" "$@"
    log_mark
    start_xacd_nowait XAC_CRASH_AT="$point"
    crashed_at "$point"
    start_xacd
    check_transfer "$point" "$expect" $# "$@"
    stop_xacd
    end_case
}

# --------------------------------------------------------- last resource

# A transfer debiting bank_a by 20, crediting bank_b and bank_m (SQL Server,
# the last resource) by 10 each.
lrc_args() {
    XARGS=("bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 20 -i 1
        "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 10 -i 1
        "bank_m: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 10 -i 1)
}

lrc_setup() {
    new_case "$1" bank_a bank_b bank_m
    echo "recovery = { interval_ms = 500; grace_ms = 60000; retry_min_ms = 500; retry_max_ms = 2000; };" >> "$IT_CONF"
    make_accounts $T 100
    ms_accounts $T 100
}

# check_lrc WHAT EXPECT: balances on bank_a, bank_b, bank_m after recovery.
check_lrc() {
    local what=$1 expect=$2 want="100 100 100" got
    wait_settled "$what"
    [ "$expect" = committed ] && want="80 110 110"
    got="$(bal_a $T) $(bal_b $T) $(bal_m $T)"
    assert_eq "$want" "$got" "$what: balances bank_a bank_b bank_m after recovery ($expect)"
    assert_no_prepared "$what"
}

# The marker of gtrid on bank_m: C, R or nothing.
marker_of() { ms_sql "SELECT outcome FROM xac_marker_bank_m WHERE gtrid = '$1'" | tr -d ' \t\r'; }

# wait_marker GTRID WANT: waits (bounded) until gtrid's marker is WANT ("" =
# removed).
wait_marker() {
    local i m=""
    for i in $(seq 1 100); do
        m=$(marker_of "$1")
        [ "$m" = "$2" ] && return 0
        sleep 0.2
    done
    fail "$CASE_NAME: the marker of $1 on bank_m is '$m' after 20 s, expected '$2'"
}

# The commit steps of a transaction with a last resource.
case_lrc() {
    local point=$1 expect=$2
    lrc_setup "$point, last resource (bank_a bank_b bank_m)${CASE_PIPE:+, $CASE_PIPE}"
    lrc_args
    run_stranded "$point"
    assert_eq 3 "$XAC_RC" "$CASE_NAME: xac exit code when xacd dies at $point (outcome unknown)"
    not_reached_check "$point"
    crashed_at "$point"
    if [ "$point" = lrc-after-commit ]; then
        assert_eq C "$(marker_of "$STRAND_GTRID")" "$point: the commit marker is on bank_m"
    else
        assert_eq "" "$(marker_of "$STRAND_GTRID")" "$point: no marker on bank_m"
        assert_eq 100 "$(bal_m $T)" "$point: SQL Server rolled its local transaction back when xacd died"
    fi
    check_xacctl_list "$point" 2
    start_xacd
    check_lrc "$point" "$expect"
    check_status "$point" "$expect"
    if [ "$expect" = committed ]; then
        wait_marker "$STRAND_GTRID" "" # ended, then removed
    else
        wait_marker "$STRAND_GTRID" R # fenced before the rollback
    fi
    stop_xacd
    end_case
}

# Markers are removed after the ENDs: dying right before leaves them behind;
# the restart adopts them (a COMMIT record, nothing left to commit), ends
# them and removes them.
case_lrc_forget() {
    local point=$1
    lrc_setup "$point, last resource (bank_a bank_b bank_m)${CASE_PIPE:+, $CASE_PIPE}"
    lrc_args
    log_mark
    start_xacd XAC_CRASH_AT="$point"
    run_xac "${XARGS[@]}"
    expect_committed "$point: the transfer"
    local g
    g=$(xac_gtrid)
    crashed_at "$point"
    assert_eq C "$(marker_of "$g")" "$point: the marker is still there"
    start_xacd
    check_lrc "$point" committed
    wait_marker "$g" ""
    stop_xacd
    end_case
}

# Recovery's last-resource steps: strand at STRAND, die at POINT inside
# recovery, restart clean.
case_lrc_recovery() {
    local point=$1 strand_at=$2 expect=$3
    lrc_setup "$point, last resource (stranded at $strand_at)"
    lrc_args
    log_mark
    start_xacd XAC_CRASH_AT="$strand_at"
    run_xac "${XARGS[@]}"
    not_reached_check "$strand_at"
    crashed_at "$strand_at"
    log_mark
    start_xacd_nowait XAC_CRASH_AT="$point"
    crashed_at "$point"
    start_xacd
    check_lrc "$point" "$expect"
    stop_xacd
    end_case
}

# ----------------------------------------------------------------- cases

POINTS=$("$XACD_BIN" --list-crash-points) || fail "xacd --list-crash-points failed"
NPOINTS=$(printf '%s\n' "$POINTS" | grep -c .)
[ "$NPOINTS" -ge 20 ] || fail "xacd lists only $NPOINTS crash points: $POINTS"
it_log "xacd lists $NPOINTS crash points: $(printf '%s\n' "$POINTS" | tr '\n' ' ')"
run_point() {
    local p=$1
    case $p in
    after-start | after-first-prepare | after-prepare-all | before-decision)
        case_transfer "$p" rolled_back bank_b
        case_transfer "$p" rolled_back bank_b bank_d
        [ "$p" != before-decision ] || CASE_PIPE=--pipeline case_transfer "$p" rolled_back bank_b bank_d
        ;;
    after-early-prepare)
        CASE_PIPE=--pipeline case_transfer "$p" rolled_back bank_b
        CASE_PIPE=--pipeline case_transfer "$p" rolled_back bank_b bank_d
        ;;
    after-decision | after-first-commit | after-commit-all | before-end | journal-batch-synced)
        case_transfer "$p" committed bank_b
        case_transfer "$p" committed bank_b bank_d
        [ "$p" != after-decision ] || CASE_PIPE=--pipeline case_transfer "$p" committed bank_b bank_d
        ;;
    journal-batch-written)
        case_transfer "$p" either bank_b
        case_transfer "$p" either bank_b bank_d
        ;;
    before-rollback | after-first-rollback)
        case_vote_no "$p" bank_b
        case_vote_no "$p" bank_b bank_d
        ;;
    before-one-phase)
        case_one_phase "$p" rolled_back bank_a
        case_one_phase "$p" rolled_back bank_b
        case_one_phase "$p" rolled_back bank_a --pipeline
        case_one_phase "$p" rolled_back bank_b --pipeline
        ;;
    after-one-phase)
        case_one_phase "$p" committed bank_a
        case_one_phase "$p" committed bank_b
        case_one_phase "$p" committed bank_a --pipeline
        case_one_phase "$p" committed bank_b --pipeline
        ;;
    journal-segment-created | journal-segment-switched | journal-segment-deleted)
        case_rotation "$p" bank_a bank_b
        case_rotation "$p" bank_a bank_b bank_d
        ;;
    journal-carried)
        case_carried "$p" bank_b
        case_carried "$p" bank_b bank_d
        ;;
    rec-before-commit | rec-after-commit | rec-before-end)
        case_recovery "$p" after-decision committed bank_b
        case_recovery "$p" after-decision committed bank_b bank_d
        ;;
    rec-before-rollback | rec-after-rollback)
        case_recovery "$p" after-prepare-all rolled_back bank_b
        case_recovery "$p" after-prepare-all rolled_back bank_b bank_d
        ;;
    lrc-before-commit)
        case_lrc "$p" rolled_back
        CASE_PIPE=--pipeline case_lrc "$p" rolled_back
        ;;
    lrc-after-commit)
        case_lrc "$p" committed
        CASE_PIPE=--pipeline case_lrc "$p" committed
        ;;
    lrc-before-forget) case_lrc_forget "$p" ;;
    rec-after-fence) case_lrc_recovery "$p" lrc-before-commit rolled_back ;;
    rec-after-adopt) case_lrc_recovery "$p" lrc-after-commit committed ;;
    *) fail "crash point $p has no case in test_crash.sh: add one (what must a restart show?)" ;;
    esac
}
ran=0
for p in $POINTS; do
    if [ -n "${XAC_CRASH_ONLY:-}" ] && ! [[ $p =~ $XAC_CRASH_ONLY ]]; then
        continue
    fi
    run_point "$p"
    ran=$((ran + 1))
done

new_case "a 2PC crash point does not fire for a one-resource transaction" bank_a bank_b
make_accounts $T 100
start_xacd XAC_CRASH_AT=before-decision
run_xac "bank_a: UPDATE $T SET balance = balance - 1 WHERE id = 1"
expect_committed "one-phase commit with before-decision armed"
assert_xacd_alive "a one-resource commit"
assert_eq 99 "$(bal_a $T)" "bank_a after the one-phase commit"
stop_xacd
end_case

it_log "summary: $ran of $NPOINTS crash points, $CASE cases:"
printf '%s\n' "${TIMES[@]}" | sed "s/^/[$IT_NAME]   /"
it_pass
