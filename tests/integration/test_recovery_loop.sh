#!/usr/bin/env bash
# The recovery loop in a running xacd (recovery = { ... }), against the real
# servers:
#   0. bad recovery settings are refused with a reason;
#   1. a resource that is down does not delay the others: a transfer over
#      MariaDB (bank_a) and PostgreSQL (bank_b) is stranded after its commit
#      decision by a crash point, and an undecided one of an earlier boot is
#      made by hand; PostgreSQL is stopped, xacd restarts: bank_a's branches
#      are resolved while bank_b is down (the time is measured and printed),
#      no END is written for the committed one until bank_b is back, then
#      everything settles and END is written;
#   2. the same with PostgreSQL frozen (SIGSTOP: it accepts connections and
#      never answers) and a 20 s connect timeout: bank_a's branch is resolved
#      while bank_b's first connection attempt is still hanging (bank_b comes
#      first in the config, so a loop that took the resources in turn would
#      wait for it);
#   3. the periodic pass picks up branches stranded while xacd runs (made by
#      hand with XA PREPARE / PREPARE TRANSACTION and this node's XIDs): one
#      of an earlier boot is rolled back at the next pass; undecided ones of
#      the running boot (MariaDB, and PostgreSQL with its prepared_at) are not
#      rolled back before grace_ms, and are after.
# Heuristic outcomes and the grace/END rules in detail: itest_recovery_loop.
. "$(dirname "$0")/lib.sh"
it_need_local_servers "stops, restarts and pauses PostgreSQL"
it_setup
T=it_recl
DB_SH=$XAC_SOURCE_DIR/tests/fixtures/db.sh
[ -n "${XAC_TEST_DIR:-}" ] || fail "XAC_TEST_DIR is not set: source the env.sh that tests/fixtures/db.sh wrote"
it_drop_tables() { drop_accounts $T; }
GRACE_MS=6000
PG_STATE=up

db() { bash "$DB_SH" "$1" "$XAC_TEST_DIR" > "$IT_DIR/db.out" 2>&1; }
# pg_up: PostgreSQL back up, from wherever this test left it; false when it
# cannot (never fails the test itself: the EXIT trap uses it too).
pg_up() {
    local i
    case $PG_STATE in
    paused) db resume-pg || return 1 ;;
    down)
        for i in 1 2 3 4 5; do
            db start-pg && break
            [ "$i" = 5 ] && return 1
            sleep 1
        done
        ;;
    esac
    PG_STATE=up
}
trap 'st=$?; set +e; kill_xacd; pg_up > /dev/null 2>&1 || echo "[$IT_NAME] could not restart PostgreSQL" >&2; (exit $st); it_cleanup' EXIT

# bank_b first: a loop that visited the resources in turn would meet it first.
it_write_config "$IT_CONF" bank_b bank_a
echo "recovery = { interval_ms = 1000; grace_ms = $GRACE_MS; retry_min_ms = 1000; retry_max_ms = 4000; };" >> "$IT_CONF"
"$XACD_BIN" -c "$IT_CONF" --check-config > /dev/null || fail "the config does not pass --check-config"
# check_bad SETTING NEEDLE: a config with this recovery group is refused, and
# the message says why.
check_bad() {
    local out rc=0
    it_write_config "$IT_DIR/bad.conf" bank_a
    echo "$1" >> "$IT_DIR/bad.conf"
    out=$("$XACD_BIN" -c "$IT_DIR/bad.conf" --check-config 2>&1) || rc=$?
    assert_eq 2 "$rc" "--check-config exit code for: $1"
    assert_contains "$out" "$2" "the error for '$1' says '$2'"
}
check_bad 'recovery = { retry_min_ms = 5000; retry_max_ms = 1000; };' "recovery.retry_max_ms (1000) is less than recovery.retry_min_ms (5000)"
check_bad 'recovery = { intervall_ms = 5000; };' "did you mean interval_ms?"
check_bad 'recovery = { interval_ms = 10; };' "interval_ms"
check_bad 'recovery = { grace_ms = -1; };' "grace_ms"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
log_mark() { LOG_MARK=$(wc -l < "$IT_LOG"); }
log_since() { tail -n +"$((LOG_MARK + 1))" "$IT_LOG"; }

# start_xacd_nowait: a frozen database holds up xacd's start-up, not its
# recovery threads.
start_xacd_nowait() {
    IT_MY_SESSIONS=$(my_session_ids || true)
    echo "==== start_xacd_nowait ($(date -u +%T))" >> "$IT_LOG"
    "$XACD_BIN" -c "${IT_START_CONF:-$IT_CONF}" >> "$IT_LOG" 2>&1 &
    IT_XACD_PID=$!
}

# strand POINT: a transfer bank_a -> bank_b that xacd dies in at POINT; sets
# GTRID.
strand() {
    start_xacd XAC_CRASH_AT="$1"
    run_xac "bank_a: UPDATE $T SET balance = balance - 10 WHERE id = 1" \
        "bank_b: UPDATE $T SET balance = balance + 10 WHERE id = 1"
    assert_eq 3 "$XAC_RC" "xac exit code when xacd dies at $1"
    wait_xacd_crash
    wait_mysql_sessions_gone
    GTRID=$(printf '%s\n' "$XAC_OUT" | grep -o "$IT_NODE\.[0-9a-f]*\.[0-9a-f]*" | head -1 || true)
    [ -n "$GTRID" ] || fail "no gtrid in the output of xac"
    it_log "stranded $GTRID at $1"
}

# wait_for WHAT SECONDS CMD...: polls CMD every 0.1 s until it succeeds.
wait_for() {
    local what=$1 s=$2 i
    shift 2
    for i in $(seq 1 $((s * 10))); do
        "$@" && return 0
        sleep 0.1
    done
    fail "$what: not within $s s"
}
no_my_prepared() { [ -z "$(my_prepared)" ]; }
no_pg_prepared() { [ -z "$(pg_prepared)" ]; }
ended() { log_since | grep "gtrid $1 is done on every resource; END written" > /dev/null; }

# Branches made by hand with this node's XIDs (format "xac1", bqual the
# resource), as a crashed xacd leaves them.
b64url() { printf '%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }
FID=2019648305 # "xac1"

# my_strand GTRID ID: a prepared branch of ours on bank_a, its session gone.
my_strand() {
    my_sql "$XAC_TEST_MYSQL_DB" "XA START X'$(hex_of "$1")',X'$(hex_of bank_a)',$FID;
        INSERT INTO $T VALUES ($2, 1); XA END X'$(hex_of "$1")',X'$(hex_of bank_a)',$FID;
        XA PREPARE X'$(hex_of "$1")',X'$(hex_of bank_a)',$FID" || fail "could not prepare $1 on MariaDB"
}
pg_strand() {
    pg_sql "BEGIN; INSERT INTO $T VALUES ($2, 1);
        PREPARE TRANSACTION '$FID.$(b64url "$1").$(b64url bank_b)'" > /dev/null ||
        fail "could not prepare $1 on PostgreSQL"
}
my_has() { my_prepared | grep -i "$(hex_of "$1")" > /dev/null; }
pg_has() { pg_sql "SELECT gid FROM pg_prepared_xacts" | grep "^$FID\.$(b64url "$1")\." > /dev/null; }
not() { ! "$@"; }

# ------------------------------------------ 1. PostgreSQL stopped
it_log "---- 1. bank_b (PostgreSQL) stopped during recovery"
make_accounts $T 100
strand after-decision
G_COMMIT=$GTRID
# An undecided transaction of an earlier boot (a restart would resolve one
# stranded by a crash point, so it is made by hand).
G_NONE=$IT_NODE.2.ffff00
my_strand "$G_NONE" 60
pg_strand "$G_NONE" 60
assert_eq 2 "$(my_prepared | grep -c .)" "MariaDB branches stranded"
assert_eq 2 "$(pg_prepared | grep -c .)" "PostgreSQL branches stranded"

db stop-pg || fail "db.sh stop-pg failed: $(cat "$IT_DIR/db.out")"
PG_STATE=down
log_mark
t0=$(now_ms)
start_xacd_nowait
wait_for "bank_a's branches resolved while bank_b is down" 30 no_my_prepared
t1=$(now_ms)
it_log "MEASURED: bank_a's branches resolved $(secs $((t1 - t0))) s after xacd started, bank_b down"
log_since | grep "resource bank_b is unreachable" > /dev/null ||
    fail "xacd did not try bank_b (no 'resource bank_b is unreachable' in its log)"
assert_eq "90 0" "$(bal_a $T) $(my_sql "$XAC_TEST_MYSQL_DB" "SELECT COUNT(*) FROM $T WHERE id = 60")" "bank_a: the committed transfer applied, the undecided one not"
log_since | grep "gtrid $G_COMMIT on resource bank_a: commit: committed" > /dev/null ||
    fail "no log of the commit of $G_COMMIT on bank_a"
log_since | grep "gtrid $G_NONE on resource bank_a: roll back.*rolled back" > /dev/null ||
    fail "no log of the rollback of $G_NONE on bank_a"
# A few more passes on bank_b, with its backoff, and still no END.
sleep 3
ended "$G_COMMIT" && fail "END written for $G_COMMIT while bank_b was down"
n_tries=$(log_since | grep -c "resource bank_b is unreachable" || true)
it_log "ok: no END while bank_b is down ($n_tries connection attempts on bank_b so far)"
log_since | grep "recovery on resource bank_b: resource down; next try in" > /dev/null ||
    fail "no backoff logged for bank_b"
# What the engine tells xacctl status (engine_get_resources).
st_rc=0
st_out=$("$XACCTL_BIN" -c "$IT_CONF" status 2>&1) || st_rc=$?
printf '%s\n' "$st_out" | sed "s/^/[$IT_NAME]   xacctl: /"
it_log "xacctl status exit code $st_rc (a resource is down)"
printf '%s\n' "$st_out" | grep -E "resource\.bank_b[^.]" | grep down > /dev/null || fail "xacctl status does not show bank_b down"
printf '%s\n' "$st_out" | grep -E "resource\.bank_a[^.]" | grep up > /dev/null || fail "xacctl status does not show bank_a up"
printf '%s\n' "$st_out" | grep "resource\.bank_b\.retry_ms" > /dev/null || fail "xacctl status shows no retry for bank_b"
it_log "ok: xacctl status shows bank_a up, bank_b down with its retry"

pg_up || fail "db.sh start-pg failed: $(cat "$IT_DIR/db.out")"
t2=$(now_ms)
wait_for "bank_b's branches resolved after it came back" 30 no_pg_prepared
wait_for "END of $G_COMMIT" 30 ended "$G_COMMIT"
t3=$(now_ms)
it_log "MEASURED: bank_b resolved and END written $(secs $((t3 - t2))) s after PostgreSQL was back (backoff at most 4 s)"
assert_eq "110 0" "$(bal_b $T) $(pg_sql "SELECT COUNT(*) FROM $T WHERE id = 60")" "bank_b: the committed transfer applied, the undecided one not"
assert_no_prepared "after bank_b came back"
assert_xacd_alive "bank_b came back"
stop_xacd

# ------------------------------------------ 2. PostgreSQL frozen
it_log "---- 2. bank_b (PostgreSQL) frozen (SIGSTOP), 20 s connect timeout"
make_accounts $T 100
strand after-decision
G_COMMIT=$GTRID
sed 's/connect_ms = [0-9]*;/connect_ms = 20000;/' "$IT_CONF" > "$IT_DIR/slow.conf"
grep -q 'connect_ms = 20000;' "$IT_DIR/slow.conf" || fail "could not set connect_ms in the config"
db pause-pg || fail "db.sh pause-pg failed: $(cat "$IT_DIR/db.out")"
PG_STATE=paused
log_mark
t0=$(now_ms)
IT_START_CONF=$IT_DIR/slow.conf start_xacd_nowait
wait_for "bank_a's branch resolved while bank_b hangs" 30 no_my_prepared
t1=$(now_ms)
# bank_b's thread is still inside its first connection attempt: it has
# neither failed nor finished a pass.
if log_since | grep -E "resource bank_b is unreachable|pass on resource bank_b" > /dev/null; then
    fail "bank_a was resolved only after bank_b's first connection attempt had ended: the frozen bank_b held bank_a up"
fi
it_log "MEASURED: bank_a's branch resolved $(secs $((t1 - t0))) s after xacd started, while bank_b's first connection attempt (up to 20 s) was still hanging"
assert_eq "90" "$(bal_a $T)" "bank_a: the committed transfer applied"
ended "$G_COMMIT" && fail "END written for $G_COMMIT while bank_b was frozen"
pg_up || fail "db.sh resume-pg failed: $(cat "$IT_DIR/db.out")"
wait_for "bank_b's branch resolved after it was thawed" 60 no_pg_prepared
wait_for "END of $G_COMMIT" 30 ended "$G_COMMIT"
assert_eq "110" "$(bal_b $T)" "bank_b: the committed transfer applied"
it_log "ok: settled and ended $(secs $(($(now_ms) - t1))) s after PostgreSQL was thawed"
wait_for "xacd ready" 60 grep -q 'xacd ready' <(log_since)
stop_xacd

# ------------------------------------------ 3. periodic pass and grace
it_log "---- 3. branches stranded while xacd runs: periodic pass, grace period"
make_accounts $T 100
start_xacd
run_xac "bank_a: UPDATE $T SET balance = balance + 0 WHERE id = 1" \
    "bank_b: UPDATE $T SET balance = balance + 0 WHERE id = 1"
expect_committed "a transaction to learn this run's boot"
BOOT=$(xac_gtrid | cut -d. -f2)
[ -n "$BOOT" ] || fail "no boot in $XAC_LAST"
G_OLD=$IT_NODE.1.ffff01 # an earlier boot of this node
G_MY=$IT_NODE.$BOOT.ffff02
G_PG=$IT_NODE.$BOOT.ffff03
log_mark
t0=$(now_ms)
my_strand "$G_OLD" 51
my_strand "$G_MY" 52
pg_strand "$G_PG" 53
my_has "$G_MY" || fail "the hand-made MariaDB branch is not listed"
pg_has "$G_PG" || fail "the hand-made PostgreSQL branch is not listed"
wait_for "the periodic pass rolls back $G_OLD" 20 not my_has "$G_OLD"
t1=$(now_ms)
it_log "MEASURED: a branch of an earlier boot stranded while xacd runs was rolled back after $(secs $((t1 - t0))) s (interval 1 s)"
if [ $((t1 - t0)) -lt $((GRACE_MS - 1000)) ]; then
    my_has "$G_MY" || fail "$G_MY (this boot, no decision) was rolled back before the grace period"
    pg_has "$G_PG" || fail "$G_PG (this boot, no decision) was rolled back before the grace period"
    it_log "ok: the branches of this boot are still prepared $(secs $(($(now_ms) - t0))) s in (grace $(secs $GRACE_MS) s)"
fi
wait_for "$G_MY rolled back after the grace period" 30 not my_has "$G_MY"
t_my=$(now_ms)
wait_for "$G_PG rolled back after the grace period" 30 not pg_has "$G_PG"
t_pg=$(now_ms)
it_log "MEASURED: this boot's undecided branches rolled back after $(secs $((t_my - t0))) s (MariaDB) and $(secs $((t_pg - t0))) s (PostgreSQL); grace $(secs $GRACE_MS) s"
[ $((t_my - t0)) -ge "$GRACE_MS" ] || fail "$G_MY was rolled back after $((t_my - t0)) ms, before the grace period ($GRACE_MS ms)"
[ $((t_pg - t0)) -ge $((GRACE_MS - 1000)) ] ||
    fail "$G_PG was rolled back after $((t_pg - t0)) ms, before the grace period ($GRACE_MS ms, PostgreSQL's clock in whole seconds)"
assert_eq "0" "$(my_sql "$XAC_TEST_MYSQL_DB" "SELECT COUNT(*) FROM $T WHERE id > 50")" "no hand-made row on bank_a"
assert_eq "0" "$(pg_sql "SELECT COUNT(*) FROM $T WHERE id > 50")" "no hand-made row on bank_b"
log_since | grep "gtrid $G_MY on resource bank_a: roll back.*rolled back" > /dev/null ||
    fail "no log of the rollback of $G_MY"
assert_xacd_alive "the periodic passes"
stop_xacd
it_pass
