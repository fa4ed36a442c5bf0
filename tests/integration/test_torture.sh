#!/usr/bin/env bash
# Torture: atomicity under fire. prog_torture's client threads move money
# between accounts in MariaDB (bank_a) and PostgreSQL (bank_b), one global
# transaction per transfer that also writes the transfer's id on both sides,
# while this script, one event after another at random moments, kills xacd
# with SIGKILL and restarts it, kills (SIGKILL) or restarts (clean stop) each
# database server, freezes one (SIGSTOP for a few seconds: connected but
# unresponsive), and sometimes kills xacd while a database is down or frozen
# so that its start-up recovery meets a resource it cannot reach. Then
# everything comes up, the load must make progress again, stops, xacd
# restarts and recovery must leave no prepared branch (bounded wait), and:
#   - the total money over both databases is unchanged;
#   - every transfer id is on both sides or on neither, with opposite amounts;
#   - on each side every balance matches the transfers recorded there;
#   - every transfer xacd acknowledged as committed is on both sides;
#   - a transfer whose outcome was lost and that STATUS later called
#     COMMITTED/COMMITTING is on both sides, ROLLED_BACK on neither;
#   - no branch of ours is left prepared on either server.
# Kills and restarts are counted apart from freezes; the run ends once there
# have been XAC_TORTURE_EVENTS of them (200 by default: about 6 minutes here,
# within ctest's 600 s). A longer run goes outside ctest, e.g. with the
# servers' env.sh sourced:
#   XAC_BUILD_DIR=build XAC_TORTURE_EVENTS=2000 bash tests/integration/test_torture.sh
# Also XAC_TORTURE_THREADS (16), XAC_TORTURE_ACCOUNTS (200 per side),
# XAC_TORTURE_SEED (the event sequence; printed), XAC_TORTURE_MIN_ACKED
# (1000: fewer acknowledged transfers fail the run as proving too little).
. "$(dirname "$0")/lib.sh"
IT_LOG_LEVEL=${IT_LOG_LEVEL:-info}
it_setup
T=it_torture
DB_SH=$XAC_SOURCE_DIR/tests/fixtures/db.sh
PROG=$XAC_BUILD_DIR/tests/prog_torture
[ -n "${XAC_TEST_DIR:-}" ] || fail "XAC_TEST_DIR is not set: source the env.sh that tests/fixtures/db.sh wrote"
[ -f "$DB_SH" ] || fail "$DB_SH is missing"
[ -x "$PROG" ] || fail "$PROG is missing: build the prog_torture target"

EVENTS=${XAC_TORTURE_EVENTS:-200}
THREADS=${XAC_TORTURE_THREADS:-16}
ACCOUNTS=${XAC_TORTURE_ACCOUNTS:-200}
INIT=1000000
RANDOM=${XAC_TORTURE_SEED:-$$}
it_log "events $EVENTS, threads $THREADS, accounts $ACCOUNTS per side, seed ${XAC_TORTURE_SEED:-$$}"

ACKED=$IT_DIR/acked
STATUSF=$IT_DIR/status
LOAD_PID=""
MYSQL_STATE=up # up, down or paused
PG_STATE=up
XACD_N=0
declare -A COUNT=()
count() { COUNT[$1]=$((${COUNT[$1]:-0} + 1)); }

# ----------------------------------------------------------------- config

# Short timeouts, so that a transaction caught by a frozen server ends soon,
# and enough pooled connections for every client thread.
it_write_config "$IT_CONF" bank_a bank_b
sed -i -e 's/^timeouts = .*/timeouts = { transaction_ms = 20000; prepare_ms = 10000; connect_ms = 2000; pool_wait_ms = 5000; };/' \
    -e 's/pool_size = 4;/pool_size = 20;/' -e "s/^workers = .*/workers = $((THREADS + 4));/" "$IT_CONF"
# The recovery loop's settings, where this xacd has them: a quick loop.
cp "$IT_CONF" "$IT_DIR/probe.conf"
echo 'recovery = { interval_ms = 1000; grace_ms = 3000; retry_min_ms = 200; retry_max_ms = 2000; };' >> "$IT_DIR/probe.conf"
if "$XACD_BIN" -c "$IT_DIR/probe.conf" --check-config > /dev/null 2>&1; then
    cp "$IT_DIR/probe.conf" "$IT_CONF"
    it_log "xacd has recovery = { ... }: interval 1 s, grace 3 s"
else
    it_log "this xacd has no recovery = { ... } settings; recovery runs at start-up and on demand"
fi
"$XACD_BIN" -c "$IT_CONF" --check-config > /dev/null || fail "the torture config does not pass --check-config"

# ------------------------------------------------------------- databases

db() { bash "$DB_SH" "$1" "$XAC_TEST_DIR" > "$IT_DIR/db.out" 2>&1; }

# db_start mysql|pg: a few tries (a port may still be busy for a moment).
db_start() {
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        if db "start-$1"; then
            case $1 in mysql) MYSQL_STATE=up ;; pg) PG_STATE=up ;; esac
            return 0
        fi
        sed "s/^/[$IT_NAME]   db.sh: /" "$IT_DIR/db.out" | tail -5 >&2
        sleep 1
    done
    fail "db.sh start-$1 failed 10 times"
}

db_down() { # kill|stop mysql|pg
    case $2 in mysql) MYSQL_STATE=down ;; pg) PG_STATE=down ;; esac
    db "$1-$2" || fail "db.sh $1-$2 failed: $(cat "$IT_DIR/db.out")"
}

db_pause() {
    case $1 in mysql) MYSQL_STATE=paused ;; pg) PG_STATE=paused ;; esac
    db "pause-$1" || fail "db.sh pause-$1 failed"
}

db_resume() {
    db "resume-$1" || fail "db.sh resume-$1 failed"
    case $1 in mysql) MYSQL_STATE=up ;; pg) PG_STATE=up ;; esac
}

# Every server this test froze or stopped comes back, whatever happened:
# the other tests share them (and lib.sh's cleanup needs them).
restore_dbs() {
    local w
    for w in mysql pg; do
        local st=$MYSQL_STATE
        [ $w = mysql ] || st=$PG_STATE
        case $st in
        paused) bash "$DB_SH" "resume-$w" "$XAC_TEST_DIR" > /dev/null 2>&1 ;;
        down) bash "$DB_SH" "start-$w" "$XAC_TEST_DIR" > /dev/null 2>&1 ||
            bash "$DB_SH" "start-$w" "$XAC_TEST_DIR" > /dev/null 2>&1 ||
            echo "[$IT_NAME] could not restart $w in $XAC_TEST_DIR" >&2 ;;
        esac
    done
    MYSQL_STATE=up
    PG_STATE=up
}

stop_load_hard() {
    if [ -n "$LOAD_PID" ]; then
        kill -9 "$LOAD_PID" 2> /dev/null
        wait "$LOAD_PID" 2> /dev/null || true
        LOAD_PID=""
    fi
}

# On failure the per-run xacd logs are gathered into $IT_LOG, whose tail
# lib.sh prints.
gather_logs() {
    local f
    for f in "$IT_DIR"/xacd-*.log; do
        [ -f "$f" ] || continue
        echo "==== $(basename "$f")"
        cat "$f"
    done >> "$IT_LOG"
}
# shellcheck disable=SC2154 # it_rc is set inside the trap itself
trap 'it_rc=$?; set +e; stop_load_hard; restore_dbs; gather_logs; (exit $it_rc); it_cleanup' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

it_drop_tables() {
    my_sql "$XAC_TEST_MYSQL_DB" "SET SESSION lock_wait_timeout = 10; DROP TABLE IF EXISTS ${T}_acct, ${T}_xfer" || true
    pg_sql "SET lock_timeout = '10s'; DROP TABLE IF EXISTS ${T}_acct, ${T}_xfer" > /dev/null || true
}

make_tables() {
    it_purge_prepared > /dev/null 2>&1 || true
    local ids
    ids=$(seq 1 "$ACCOUNTS" | sed "s/.*/(&, $INIT)/" | paste -sd,)
    my_sql "$XAC_TEST_MYSQL_DB" "SET SESSION lock_wait_timeout = 10;
        DROP TABLE IF EXISTS ${T}_acct, ${T}_xfer;
        CREATE TABLE ${T}_acct (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB;
        CREATE TABLE ${T}_xfer (id BIGINT PRIMARY KEY, acct INT NOT NULL, amount BIGINT NOT NULL) ENGINE=InnoDB;
        INSERT INTO ${T}_acct VALUES $ids;" || fail "cannot create the MariaDB tables"
    pg_sql "SET lock_timeout = '10s';
        DROP TABLE IF EXISTS ${T}_acct, ${T}_xfer;
        CREATE TABLE ${T}_acct (id INT PRIMARY KEY, balance BIGINT NOT NULL);
        CREATE TABLE ${T}_xfer (id BIGINT PRIMARY KEY, acct INT NOT NULL, amount BIGINT NOT NULL);
        INSERT INTO ${T}_acct VALUES $ids;" > /dev/null || fail "cannot create the PostgreSQL tables"
}

# ------------------------------------------------------------------ xacd

# xacd_launch: a new xacd with its own log file ($XACD_LOG), not waited for.
xacd_launch() {
    XACD_N=$((XACD_N + 1))
    XACD_LOG=$IT_DIR/xacd-$XACD_N.log
    "$XACD_BIN" -c "$IT_CONF" > "$XACD_LOG" 2>&1 &
    IT_XACD_PID=$!
}

# xacd_wait_ready [SECONDS]: until this xacd logs "xacd ready". An xacd that
# exits before is started again (counted): only a hang fails the test.
xacd_wait_ready() {
    local limit=${1:-60}
    for _ in $(seq 1 $((limit * 20))); do
        grep -q 'xacd ready' "$XACD_LOG" && return 0
        if ! kill -0 "$IT_XACD_PID" 2> /dev/null; then
            wait "$IT_XACD_PID" 2> /dev/null || true
            count xacd_start_failed
            it_log "xacd exited before it was ready: $(tail -2 "$XACD_LOG" | tr '\n' ' ')"
            sleep 0.5
            xacd_launch
        fi
        sleep 0.05
    done
    fail "xacd did not get ready within $limit s (log $XACD_LOG): a hang"
}

xacd_kill() {
    kill -9 "$IT_XACD_PID" 2> /dev/null
    wait "$IT_XACD_PID" 2> /dev/null || true
    IT_XACD_PID=""
}

xacd_stop_clean() {
    kill -TERM "$IT_XACD_PID" 2> /dev/null
    for _ in $(seq 1 600); do
        kill -0 "$IT_XACD_PID" 2> /dev/null || break
        sleep 0.05
    done
    kill -0 "$IT_XACD_PID" 2> /dev/null && fail "xacd did not stop within 30 s of SIGTERM"
    wait "$IT_XACD_PID" 2> /dev/null || true
    IT_XACD_PID=""
}

# --------------------------------------------------------------- helpers

rand_ms() { echo $((RANDOM % ($2 - $1 + 1) + $1)); } # MIN MAX
nap_ms() { sleep "$(awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }')"; }
acked_count() { [ -f "$ACKED" ] && wc -l < "$ACKED" || echo 0; }
kills_restarts() {
    echo $((${COUNT[xacd_kill]:-0} + ${COUNT[mysql_kill]:-0} + ${COUNT[mysql_restart]:-0} +
        ${COUNT[pg_kill]:-0} + ${COUNT[pg_restart]:-0}))
}

# ---------------------------------------------------------------- events

ev_xacd_kill() {
    xacd_kill
    count xacd_kill
    nap_ms "$(rand_ms 0 300)"
    xacd_launch
    xacd_wait_ready
}

# ev_db_down WHICH kill|stop: the server goes away and comes back.
ev_db_down() {
    db_down "$2" "$1"
    if [ "$2" = kill ]; then count "$1_kill"; else count "$1_restart"; fi
    nap_ms "$(rand_ms 0 1500)"
    db_start "$1"
}

ev_db_pause() {
    db_pause "$1"
    count "$1_pause"
    nap_ms "$(rand_ms 1000 4000)"
    db_resume "$1"
}

# xacd dies while a server is down or frozen; the new xacd starts (and runs
# its start-up recovery) before the server is back.
ev_xacd_during_outage() {
    local w=$1 how=$2
    if [ "$how" = pause ]; then db_pause "$w"; count "$w"_pause; else
        db_down kill "$w"
        count "$w"_kill
    fi
    nap_ms "$(rand_ms 0 500)"
    xacd_kill
    count xacd_kill
    count xacd_kill_during_outage
    xacd_launch
    nap_ms "$(rand_ms 500 2500)"
    if [ "$how" = pause ]; then db_resume "$w"; else db_start "$w"; fi
    xacd_wait_ready
}

one_event() {
    local r=$((RANDOM % 100))
    if [ $r -lt 34 ]; then
        ev_xacd_kill
    elif [ $r -lt 46 ]; then
        ev_db_down mysql kill
    elif [ $r -lt 52 ]; then
        ev_db_down mysql stop
    elif [ $r -lt 64 ]; then
        ev_db_down pg kill
    elif [ $r -lt 70 ]; then
        ev_db_down pg stop
    elif [ $r -lt 77 ]; then
        ev_db_pause mysql
    elif [ $r -lt 84 ]; then
        ev_db_pause pg
    elif [ $r -lt 88 ]; then
        ev_xacd_during_outage mysql kill
    elif [ $r -lt 92 ]; then
        ev_xacd_during_outage pg kill
    elif [ $r -lt 96 ]; then
        ev_xacd_during_outage mysql pause
    else
        ev_xacd_during_outage pg pause
    fi
}

# ------------------------------------------------------------------- run

make_tables
: > "$ACKED"
: > "$STATUSF"
xacd_launch
xacd_wait_ready 30
"$PROG" "$ACKED" "$STATUSF" "$T" "$THREADS" "$ACCOUNTS" > "$IT_DIR/load.out" 2> "$IT_DIR/load.log" &
LOAD_PID=$!
t0=$(date +%s)

# Some transfers commit before the first event.
for _ in $(seq 1 200); do
    [ "$(acked_count)" -ge 50 ] && break
    kill -0 "$LOAD_PID" 2> /dev/null || fail "prog_torture exited: $(tail -5 "$IT_DIR/load.log")"
    sleep 0.1
done
[ "$(acked_count)" -ge 50 ] || fail "fewer than 50 transfers committed in 20 s before any fault"

last_report=$t0
while [ "$(kills_restarts)" -lt "$EVENTS" ]; do
    kill -0 "$LOAD_PID" 2> /dev/null || fail "prog_torture exited: $(tail -5 "$IT_DIR/load.log")"
    one_event
    nap_ms "$(rand_ms 100 1000)"
    now=$(date +%s)
    if [ $((now - last_report)) -ge 30 ]; then
        it_log "$((now - t0)) s: $(kills_restarts) kills and restarts, $(acked_count) transfers acknowledged"
        last_report=$now
    fi
done
t1=$(date +%s)
it_log "chaos done in $((t1 - t0)) s: $(kills_restarts) kills and restarts, $(acked_count) transfers acknowledged"

# Everything is up: the load must make progress again (bounded).
restore_dbs
before=$(acked_count)
for _ in $(seq 1 600); do
    [ "$(acked_count)" -ge $((before + 20)) ] && break
    sleep 0.1
done
[ "$(acked_count)" -ge $((before + 20)) ] ||
    fail "no progress after the last event: $(($(acked_count) - before)) transfers in 60 s with everything up"
it_log "ok: the load makes progress again after the last event"

# Stop the load: each thread finishes the transfer it is in (bounded).
kill -TERM "$LOAD_PID"
for _ in $(seq 1 600); do
    kill -0 "$LOAD_PID" 2> /dev/null || break
    sleep 0.1
done
if kill -0 "$LOAD_PID" 2> /dev/null; then
    gdb -p "$LOAD_PID" -batch -ex 'thread apply all bt' > "$IT_DIR/load.stacks" 2>&1 || true
    fail "prog_torture did not stop within 60 s of SIGTERM: a client hangs (stacks in $IT_DIR/load.stacks)"
fi
load_rc=0
wait "$LOAD_PID" || load_rc=$?
LOAD_PID=""
load_summary=$(tr "\n" ";" < "$IT_DIR/load.out")
it_log "load: $load_summary"
[ "$load_rc" = 0 ] || fail "prog_torture exited with $load_rc: $(tail -5 "$IT_DIR/load.log")"

# A clean restart, and recovery settles every branch in doubt (bounded).
xacd_stop_clean
xacd_launch
xacd_wait_ready 60
m="" p=""
for _ in $(seq 1 240); do
    m=$(my_prepared)
    p=$(pg_prepared)
    [ -z "$m$p" ] && break
    sleep 0.5
done
[ -z "$m$p" ] || fail "recovery left prepared branches 120 s after the restart: MariaDB: $m PostgreSQL: $p"
it_log "ok: no branch of ours left prepared on either server"
xacd_stop_clean

# ---------------------------------------------------------------- checks

my_sql "$XAC_TEST_MYSQL_DB" "SELECT id, amount FROM ${T}_xfer" | tr '\t' ' ' | sort > "$IT_DIR/a.rows"
pg_sql "SELECT id, amount FROM ${T}_xfer" | tr '|' ' ' | sort > "$IT_DIR/b.rows"
cut -d' ' -f1 "$IT_DIR/a.rows" > "$IT_DIR/a.ids"
cut -d' ' -f1 "$IT_DIR/b.rows" > "$IT_DIR/b.ids"
n_a=$(wc -l < "$IT_DIR/a.ids")
n_b=$(wc -l < "$IT_DIR/b.ids")
only=$(comm -3 "$IT_DIR/a.ids" "$IT_DIR/b.ids" | tr -d '\t' | head -20 | tr '\n' ' ')
[ -z "$only" ] || fail "transfers on one side only (first 20): $only"
assert_eq "$n_a" "$n_b" "transfer rows in MariaDB and in PostgreSQL"
it_log "ok: all $n_a transfer ids are on both sides"

bad=$(join "$IT_DIR/a.rows" "$IT_DIR/b.rows" | awk '$2 + $3 != 0' | head -5 | tr '\n' ';')
[ -z "$bad" ] || fail "transfers whose two sides do not cancel out (id amount_a amount_b): $bad"
it_log "ok: each transfer's two amounts cancel out"

sum_a=$(my_sql "$XAC_TEST_MYSQL_DB" "SELECT SUM(balance) FROM ${T}_acct")
sum_b=$(pg_sql "SELECT SUM(balance) FROM ${T}_acct")
assert_eq $((2 * ACCOUNTS * INIT)) $((sum_a + sum_b)) "total money over both databases"

off_a=$(my_sql "$XAC_TEST_MYSQL_DB" "SELECT a.id FROM ${T}_acct a LEFT JOIN
    (SELECT acct, SUM(amount) s FROM ${T}_xfer GROUP BY acct) x ON x.acct = a.id
    WHERE a.balance <> $INIT + COALESCE(x.s, 0)" | head -5 | tr '\n' ' ')
off_b=$(pg_sql "SELECT a.id FROM ${T}_acct a LEFT JOIN
    (SELECT acct, SUM(amount) s FROM ${T}_xfer GROUP BY acct) x ON x.acct = a.id
    WHERE a.balance <> $INIT + COALESCE(x.s, 0)" | head -5 | tr '\n' ' ')
[ -z "$off_a$off_b" ] || fail "balances that do not match their transfer rows: MariaDB: $off_a PostgreSQL: $off_b"
it_log "ok: every balance on each side matches the transfers recorded there"

sort -u "$ACKED" > "$IT_DIR/acked.ids"
n_acked=$(wc -l < "$IT_DIR/acked.ids")
[ "$n_acked" = "$(wc -l < "$ACKED")" ] || fail "a transfer id was acknowledged twice"
lost=$(comm -23 "$IT_DIR/acked.ids" "$IT_DIR/a.ids" | head -20 | tr '\n' ' ')
[ -z "$lost" ] || fail "transfers acknowledged as committed but not in the databases (first 20): $lost"
it_log "ok: all $n_acked acknowledged transfers are on both sides"
[ "$n_acked" -ge "${XAC_TORTURE_MIN_ACKED:-1000}" ] || fail "only $n_acked transfers were acknowledged: too few to prove anything"

n_st=$(wc -l < "$STATUSF")
st_bad=$(awk '$2 == "COMMITTED" || $2 == "COMMITTING" { print $1 }' "$STATUSF" | sort |
    comm -23 - "$IT_DIR/a.ids" | head -10 | tr '\n' ' ')
[ -z "$st_bad" ] || fail "STATUS said committed but the transfer is not in the databases: $st_bad"
st_bad=$(awk '$2 == "ROLLED_BACK" { print $1 }' "$STATUSF" | sort |
    comm -12 - "$IT_DIR/a.ids" | head -10 | tr '\n' ' ')
[ -z "$st_bad" ] || fail "STATUS said rolled back but the transfer is in the databases: $st_bad"
# UNKNOWN is not asserted on: once xacd has written a transaction's END
# record and restarted, it no longer knows the gtrid (docs/protocol.md rule 8).
unk_committed=$(awk '$2 == "UNKNOWN" { print $1 }' "$STATUSF" | sort | comm -12 - "$IT_DIR/a.ids" | wc -l)
it_log "STATUS answered UNKNOWN for $unk_committed transfer(s) that did commit"
it_log "ok: $n_st outcomes asked after a lost answer agree with the databases ($(awk '{print $2}' "$STATUSF" | sort | uniq -c | tr -s ' ' | tr '\n' ','))"

assert_no_prepared "at the end"

# Outcomes recovery calls heuristic or unexpected are reported, not failed:
# a killed xacd's database session may finish a branch on its own.
cat "$IT_DIR"/xacd-*.log | grep -E ' (WARN|ERROR): recovery: .*(returned XA|refused \()' > "$IT_DIR/unexpected" || true
it_log "xacd logs: $(wc -l < "$IT_DIR/unexpected") unexpected outcome(s) reported by recovery$(
    sed -E 's/.*(returned|refused) \(?([A-Z_]+).*/\2/' "$IT_DIR/unexpected" | sort | uniq -c | tr -s ' ' | tr '\n' ',')"

secs=$(($(date +%s) - t0))
it_log "SUMMARY: $(kills_restarts) kills and restarts in $((t1 - t0)) s of chaos ($secs s in all):" \
    "xacd SIGKILL ${COUNT[xacd_kill]:-0} (${COUNT[xacd_kill_during_outage]:-0} of them while a database was down or frozen)," \
    "MariaDB SIGKILL ${COUNT[mysql_kill]:-0}, restart ${COUNT[mysql_restart]:-0}, frozen ${COUNT[mysql_pause]:-0}," \
    "PostgreSQL SIGKILL ${COUNT[pg_kill]:-0}, restart ${COUNT[pg_restart]:-0}, frozen ${COUNT[pg_pause]:-0};" \
    "xacd start-ups that failed ${COUNT[xacd_start_failed]:-0};" \
    "transfers checked: $n_a on both sides, $n_acked acknowledged, $n_st asked after a lost answer;" \
    "load: $load_summary"
it_pass
