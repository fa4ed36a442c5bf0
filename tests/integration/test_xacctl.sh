#!/usr/bin/env bash
# xacctl, offline and online. Branches are stranded by killing xacd at crash
# points (before-decision: no decision; after-decision: committed), foreign
# ones are prepared by hand (an XA PREPARE on MariaDB, a PREPARE TRANSACTION
# with a gid that is no XID on PostgreSQL), and some of ours are prepared by
# hand too, where xacd would otherwise resolve them before the tool could. It
# checks that list shows each branch's decision and the action recovery will
# take (table and JSON), that commit and rollback resolve them, that the
# safety refusals fire (roll back a committed gtrid, commit one without a
# decision, touch a foreign one without --force), and that every attempt lands
# in the audit log. All of it with xacd stopped, and then through the running
# xacd's admin socket (status, list, commit, rollback, recover), where
# --offline is refused.
. "$(dirname "$0")/lib.sh"
it_need_local_servers "stops and restarts PostgreSQL"
it_setup
T=it_xacctl
F=it_xacctl_f
DB_SH=$XAC_SOURCE_DIR/tests/fixtures/db.sh
[ -n "${XAC_TEST_DIR:-}" ] || fail "XAC_TEST_DIR is not set: source the env.sh that tests/fixtures/db.sh wrote"
AUDIT=$IT_JOURNAL/audit.log
ADMIN=$IT_JOURNAL/admin.sock
FMT=2019648305 # xac's format id ("xac1")
PG_DOWN=""
FOREIGN_PG=frn_pg_gid_1

it_drop_tables() {
    # After a failure half-way: PostgreSQL may be down, and branches the test
    # would have resolved hold locks on the tables.
    restart_pg
    it_purge_prepared
    my_sql "$XAC_TEST_MYSQL_DB" "XA ROLLBACK 'frn-my-1','b1',7" > /dev/null 2>&1 || true
    my_sql "$XAC_TEST_MYSQL_DB" "XA ROLLBACK 'frn-my-2','b2',7" > /dev/null 2>&1 || true
    pg_sql "ROLLBACK PREPARED '$FOREIGN_PG'" > /dev/null 2>&1 || true
    drop_accounts $T
    drop_accounts $F
}
restart_pg() {
    if [ -n "$PG_DOWN" ]; then
        bash "$DB_SH" start-pg "$XAC_TEST_DIR" > /dev/null 2>&1 || true
        PG_DOWN=""
    fi
}

# Recovery passes only at start-up and when asked, a long grace period and a
# long retry for a resource that is down, so that what the test strands stays
# in doubt while xacd runs until the test resolves it.
cat >> "$IT_CONF" << 'CONF'
recovery = { interval_ms = 600000; grace_ms = 600000; retry_min_ms = 600000; retry_max_ms = 600000; };
CONF

run_ctl() { # ARGS...: sets CTL_RC and CTL_OUT (stdout + stderr)
    CTL_RC=0
    CTL_OUT=$("$XACCTL_BIN" "$@" 2>&1) || CTL_RC=$?
    printf '%s\n' "$CTL_OUT" | sed "s/^/[$IT_NAME]   xacctl: /"
}
# run_json ARGS...: stdout only in CTL_JSON, which must be valid JSON.
run_json() {
    CTL_RC=0
    CTL_JSON=$("$XACCTL_BIN" --json "$@" 2> "$IT_DIR/ctl.err") || CTL_RC=$?
    printf '%s\n' "$CTL_JSON" | sed "s/^/[$IT_NAME]   xacctl --json: /"
    sed "s/^/[$IT_NAME]   xacctl stderr: /" "$IT_DIR/ctl.err"
    printf '%s' "$CTL_JSON" | python3 -m json.tool > /dev/null ||
        fail "xacctl --json $* printed invalid JSON"
    it_log "ok: xacctl --json $*: valid JSON"
}
# jq_py EXPR: evaluates a Python expression over the parsed CTL_JSON (as j).
jq_py() {
    printf '%s' "$CTL_JSON" | python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"
}
# decision_of GTRID RESOURCE: "decision|action" of that branch in CTL_JSON.
decision_of() {
    jq_py "'|'.join(next(([b['decision'], b['action']] for b in j['branches'] if b['gtrid'] == '$1' and b['resource'] == '$2'), ['missing', '-']))"
}
audit_count() { # PATTERN...: audit lines matching every pattern (fixed strings)
    local lines p
    lines=$(cat "$AUDIT" 2> /dev/null || true)
    for p in "$@"; do lines=$(printf '%s\n' "$lines" | grep -F -- "$p" || true); done
    printf '%s' "$lines" | grep -c . || true
}

# strand POINT ID: a three-resource transfer on row ID, xacd killed at POINT;
# sets GTRID.
strand() {
    local point=$1 id=$2
    start_xacd XAC_CRASH_AT="$point"
    run_xac "bank_a: UPDATE $T SET balance = balance - 20 WHERE id = $id" \
        "bank_b: UPDATE $T SET balance = balance + 10 WHERE id = $id" \
        "bank_c: UPDATE $T SET balance = balance + 10 WHERE id = $id"
    wait_xacd_crash
    wait_mysql_sessions_gone
    GTRID=$(printf '%s\n' "$XAC_OUT" | grep -o "$IT_NODE\.[0-9a-f]*\.[0-9a-f]*" | head -1 || true)
    [ -n "$GTRID" ] || fail "$point: no gtrid in the xac output"
    it_log "stranded $GTRID at $point"
}
bal() { # DB ID: balance of row ID on bank_a/bank_b/bank_c
    case $1 in
    a) my_sql "$XAC_TEST_MYSQL_DB" "SELECT balance FROM $T WHERE id = $2" ;;
    b) pg_sql "SELECT balance FROM $T WHERE id = $2" ;;
    c) my_sql "$XAC_TEST_MYSQL_DB2" "SELECT balance FROM $T WHERE id = $2" ;;
    esac
}
# my_prepare_by_hand DB GTRID BQUAL FORMAT ROW: an XA branch prepared on MariaDB
# by a session that then goes away (the branch stays prepared).
my_prepare_by_hand() {
    my_sql "$1" "XA START '$2','$3',$4; INSERT INTO $F VALUES ($5, 1); XA END '$2','$3',$4;
        XA PREPARE '$2','$3',$4;" || fail "could not prepare $2 by hand"
}

# ------------------------------------------------------------------ usage
it_log "usage and help"
run_ctl
assert_eq 2 "$CTL_RC" "no command: exit 2"
run_ctl -c "$IT_CONF" frobnicate
assert_eq 2 "$CTL_RC" "unknown command: exit 2"
run_ctl -c "$IT_CONF" commit
assert_eq 2 "$CTL_RC" "commit without an XID: exit 2"
run_ctl -c "$IT_CONF" --force list
assert_eq 2 "$CTL_RC" "--force with list: exit 2"
run_ctl -c "$IT_CONF" --online --offline list
assert_eq 2 "$CTL_RC" "--online with --offline: exit 2"
run_ctl --help
assert_eq 0 "$CTL_RC" "--help: exit 0"
for w in status list commit rollback recover --force --resource --json --offline --online \
    --operator "audit log" "admin socket" "Exit status"; do
    assert_contains "$CTL_OUT" "$w" "--help names $w"
done
run_ctl -c "$IT_DIR/no-such.conf" list
assert_eq 1 "$CTL_RC" "missing config: exit 1"

it_log "config keys admin_socket and audit_log"
{ cat "$IT_CONF"; echo 'admin_socket = "";'; } > "$IT_DIR/bad1.conf"
run_ctl -c "$IT_DIR/bad1.conf" list
assert_eq 1 "$CTL_RC" "empty admin_socket: exit 1"
assert_contains "$CTL_OUT" "bad1.conf:$(wc -l < "$IT_DIR/bad1.conf"): admin_socket is empty" "empty admin_socket: FILE:LINE and why"
{ cat "$IT_CONF"; printf 'admin_socket = "/tmp/%0120d";\n' 0; } > "$IT_DIR/bad2.conf"
run_ctl -c "$IT_DIR/bad2.conf" list
assert_eq 1 "$CTL_RC" "admin_socket too long for a Unix socket: exit 1"
assert_contains "$CTL_OUT" "too long for a Unix socket" "too long admin_socket: the reason"
{ cat "$IT_CONF"; echo 'audit_logg = "x";'; } > "$IT_DIR/bad3.conf"
run_ctl -c "$IT_DIR/bad3.conf" list
assert_contains "$CTL_OUT" "did you mean audit_log?" "misspelt audit_log: did-you-mean"

make_accounts $T 100
for db in "$XAC_TEST_MYSQL_DB" "$XAC_TEST_MYSQL_DB2"; do
    my_sql "$db" "INSERT INTO $T VALUES (2, 100), (3, 100)"
    my_sql "$db" "DROP TABLE IF EXISTS $F; CREATE TABLE $F (id INT PRIMARY KEY, v INT) ENGINE=InnoDB"
done
pg_sql "INSERT INTO $T VALUES (2, 100), (3, 100); DROP TABLE IF EXISTS $F;
    CREATE TABLE $F (id INT PRIMARY KEY, v INT)" > /dev/null

run_ctl -c "$IT_CONF" --online list
assert_eq 1 "$CTL_RC" "--online with xacd stopped: exit 1"
assert_contains "$CTL_OUT" "does not answer on its admin socket" "--online says xacd does not answer"

# ------------------------------------------- offline: no decision (crash)
it_log "---- offline, a transaction stranded before its decision"
strand before-decision 2
G_NONE=$GTRID
run_json -c "$IT_CONF" list
assert_eq 0 "$CTL_RC" "list exit code"
assert_eq offline "$(jq_py "j['mode']")" "list ran offline"
for r in bank_a bank_b bank_c; do
    assert_eq "none|roll back" "$(decision_of "$G_NONE" $r)" "before-decision: $r: no decision, recovery rolls back"
done
run_ctl -c "$IT_CONF" --operator alice commit "$G_NONE"
assert_eq 3 "$CTL_RC" "commit of a gtrid without decision: refused (exit 3)"
assert_contains "$CTL_OUT" "no COMMIT record" "the refusal says why"
assert_eq 3 "$(audit_count 'operator="alice" mode=offline action=commit' "$G_NONE" 'decision=none force=no outcome="refused: ')" \
    "three refusals in the audit log"
assert_eq "100 100 100" "$(bal a 2) $(bal b 2) $(bal c 2)" "nothing was committed"
run_ctl -c "$IT_CONF" --operator alice rollback "$G_NONE"
assert_eq 0 "$CTL_RC" "rollback of a gtrid without decision: exit 0"
assert_eq 3 "$(audit_count 'operator="alice" mode=offline action=rollback' "$G_NONE" 'decision=none force=no outcome="rolled back"')" \
    "three rollbacks in the audit log"
assert_eq "100 100 100" "$(bal a 2) $(bal b 2) $(bal c 2)" "balances of row 2 unchanged"
assert_no_prepared "after the offline rollback"

# ---------------------------------- offline: committed, foreign, by hand
it_log "---- offline, a committed transaction, foreign branches and an undecided one of ours"
strand after-decision 1
G_COMMIT=$GTRID
my_prepare_by_hand "$XAC_TEST_MYSQL_DB" frn-my-1 b1 7 1
my_prepare_by_hand "$XAC_TEST_MYSQL_DB" frn-my-2 b2 7 2
pg_sql "BEGIN; INSERT INTO $F VALUES (1, 1); PREPARE TRANSACTION '$FOREIGN_PG'" > /dev/null
# An undecided branch of ours from an earlier boot, as a crash between
# prepare and decision leaves one (the crash case above showed xacd's own).
G_OLD="$IT_NODE.1.1"
my_prepare_by_hand "$XAC_TEST_MYSQL_DB" "$G_OLD" bank_a $FMT 3

run_json -c "$IT_CONF" list
assert_eq 0 "$CTL_RC" "list exit code"
for r in bank_a bank_b bank_c; do
    assert_eq "committed|commit" "$(decision_of "$G_COMMIT" $r)" "after-decision: $r: committed, recovery commits"
done
assert_eq "none|roll back" "$(decision_of "$G_OLD" bank_a)" "undecided branch of an earlier boot: recovery rolls back"
assert_eq "foreign|leave (foreign)" "$(decision_of frn-my-1 bank_a)" "foreign MariaDB XID: left alone"
assert_eq "foreign|leave (foreign)" "$(decision_of $FOREIGN_PG bank_b)" "foreign PostgreSQL gid: left alone"
assert_eq "$FOREIGN_PG" "$(jq_py "next(b['xid'] for b in j['branches'] if b['gtrid'] == '$FOREIGN_PG')")" \
    "the PostgreSQL gid is listed as it is"
assert_eq "'frn-my-1','b1',7" "$(jq_py "next(b['xid'] for b in j['branches'] if b['gtrid'] == 'frn-my-1')")" \
    "the foreign XID is listed in xacctl's XID form"
run_ctl -c "$IT_CONF" list
assert_eq 0 "$CTL_RC" "table list exit code"
assert_contains "$CTL_OUT" "offline, xacd stopped" "the table says offline"
n=$(printf '%s\n' "$CTL_OUT" | grep -F "$G_COMMIT" | grep -cF "committed" || true)
assert_eq 3 "$n" "the table shows three committed branches of $G_COMMIT"
n=$(printf '%s\n' "$CTL_OUT" | grep -F "frn-my-1" | grep -cF "foreign: not ours" || true)
[ "$n" -ge 1 ] || fail "the table does not show frn-my-1 as foreign"

it_log "offline refusals"
run_ctl -c "$IT_CONF" rollback "$G_COMMIT"
assert_eq 3 "$CTL_RC" "rollback of a committed gtrid: refused (exit 3)"
assert_contains "$CTL_OUT" "has a COMMIT record" "the refusal names the COMMIT record"
assert_eq 3 "$(audit_count 'mode=offline action=rollback' "$G_COMMIT" 'decision=committed force=no outcome="refused: ')" \
    "the three refused rollbacks are audited"
run_ctl -c "$IT_CONF" --resource bank_a rollback "'frn-my-1','b1',7"
assert_eq 3 "$CTL_RC" "rollback of a foreign XID without --force: refused (exit 3)"
assert_contains "$CTL_OUT" "foreign" "the refusal says foreign"
assert_eq 1 "$(audit_count 'mode=offline action=rollback resource="bank_a"' "frn-my-1" 'decision=foreign force=no outcome="refused: ')" \
    "the refused foreign rollback is audited"
run_ctl -c "$IT_CONF" --force rollback $FOREIGN_PG
assert_eq 3 "$CTL_RC" "a PostgreSQL gid that is no XID cannot be resolved by xacctl (exit 3)"
assert_contains "$CTL_OUT" "ROLLBACK PREPARED '$FOREIGN_PG'" "the refusal says what SQL to run"

it_log "offline resolutions"
run_ctl -c "$IT_CONF" --operator bob --resource bank_a commit "$G_COMMIT"
assert_eq 0 "$CTL_RC" "commit of $G_COMMIT on bank_a: exit 0"
assert_eq 80 "$(bal a 1)" "bank_a committed by hand"
assert_eq 1 "$(audit_count 'operator="bob" mode=offline action=commit resource="bank_a"' "$G_COMMIT" 'decision=committed force=no outcome="committed"')" \
    "the commit is audited"
run_ctl -c "$IT_CONF" --operator bob rollback "$G_OLD"
assert_eq 0 "$CTL_RC" "rollback of the undecided branch: exit 0"
run_ctl -c "$IT_CONF" --operator bob --force --resource bank_a rollback "'frn-my-1','b1',7"
assert_eq 0 "$CTL_RC" "forced rollback of a foreign XID: exit 0"
assert_eq 1 "$(audit_count 'operator="bob" mode=offline action=rollback resource="bank_a"' "frn-my-1" 'decision=foreign force=yes outcome="rolled back (forced')" \
    "the forced foreign rollback is audited with force=yes"
run_json -c "$IT_CONF" list
assert_eq missing "$(decision_of frn-my-1 bank_a | cut -d'|' -f1)" "frn-my-1 is gone"
assert_eq missing "$(decision_of "$G_OLD" bank_a | cut -d'|' -f1)" "$G_OLD is gone"
assert_eq missing "$(decision_of "$G_COMMIT" bank_a | cut -d'|' -f1)" "$G_COMMIT is gone from bank_a"
assert_eq committed "$(decision_of "$G_COMMIT" bank_b | cut -d'|' -f1)" "$G_COMMIT still in doubt on bank_b"

run_json -c "$IT_CONF" status
assert_eq 0 "$CTL_RC" "offline status: exit 0"
assert_eq "offline|not running|1|3|up|up" \
    "$(jq_py "'|'.join(str(j[k]) for k in ['mode', 'daemon', 'journal_pending', 'resources_up', 'resource.bank_a', 'resource.bank_b'])")" \
    "offline status: mode, daemon, pending commit, resources up"
[ "$(jq_py "j['indoubt']")" -ge 3 ] || fail "offline status counts the branches in doubt"

# -------------------------------------------------------------- online
it_log "---- online, through the running xacd (PostgreSQL down while it starts)"
bash "$DB_SH" stop-pg "$XAC_TEST_DIR" > /dev/null || fail "db.sh stop-pg failed"
PG_DOWN=1
start_xacd
for i in $(seq 1 100); do
    [ "$(bal c 1)" = 110 ] && break
    sleep 0.1
done
assert_eq 110 "$(bal c 1)" "xacd's start-up recovery committed bank_c"
bash "$DB_SH" start-pg "$XAC_TEST_DIR" > /dev/null || fail "db.sh start-pg failed"
PG_DOWN=""
[ -S "$ADMIN" ] || fail "no admin socket at $ADMIN"
assert_eq 600 "$(stat -c %a "$ADMIN")" "the admin socket is mode 0600"

run_ctl -c "$IT_CONF" --offline list
assert_eq 1 "$CTL_RC" "--offline while xacd runs: exit 1"
assert_contains "$CTL_OUT" "xacd is running (it holds the journal" "--offline is refused with the reason"

run_json -c "$IT_CONF" status
assert_eq 1 "$CTL_RC" "online status with a resource down: exit 1 (degraded)"
assert_eq online "$(jq_py "j['mode']")" "status ran online"
# PostgreSQL is back, but xacd's retry of it is 10 minutes away: to xacd it
# is still down, and status says so.
assert_eq "up|down|up|2" "$(jq_py "'|'.join(str(j[k]) for k in ['resource.bank_a', 'resource.bank_b', 'resource.bank_c', 'resources_up'])")" \
    "online status: bank_b down as xacd last saw it"
assert_contains "$(jq_py "j['resource.bank_b.last_error']")" "$XAC_TEST_PG_PORT" "online status: bank_b's last error"
assert_eq "running|$IT_NODE|3" "$(jq_py "'|'.join(str(j[k]) for k in ['daemon', 'node_id', 'resources'])")" \
    "online status: daemon, node, resources"
for k in transactions_live transactions_held indoubt journal_pending resource.bank_a resource.bank_b heuristics; do
    [ "$(jq_py "'$k' in j")" = True ] || fail "online status has no $k"
done
run_ctl -c "$IT_CONF" status
assert_contains "$CTL_OUT" "online, admin socket $ADMIN" "the status table names the admin socket"

it_log "the admin socket and the client socket keep their requests apart"
it_rawframe_setup
raw "$HELLO" "$(frame 20 "")"
assert_contains "${RAW[1]}" "ERROR XAC_EPROTO" "ADMIN_STATUS on the client socket: EPROTO"
RAW=()
mapfile -t RAW < <("$RAWFRAME_BIN" "$ADMIN" "$HELLO" "$(frame 20 "")")
assert_contains "${RAW[0]}" "ERROR XAC_EPROTO" "HELLO on the admin socket: EPROTO"
mapfile -t RAW < <("$RAWFRAME_BIN" "$ADMIN" "$(frame 20 "")" \
    "$(frame 22 "$(hx_str bank_a)$(hx_str x)0102$(hx_str me)")")
assert_eq RESULT "${RAW[0]}" "ADMIN_STATUS on the admin socket: a row set"
assert_contains "${RAW[1]}" "ERROR XAC_EPROTO" "ADMIN_RESOLVE with force 2: EPROTO"

# An undecided branch of this boot: recovery waits out the grace period.
run_xac "bank_a: UPDATE $T SET balance = balance + 0 WHERE id = 3"
expect_committed "a transaction on the running xacd"
BOOT=$(xac_gtrid | cut -d. -f2)
G_NEW="$IT_NODE.$BOOT.ffffff"
my_prepare_by_hand "$XAC_TEST_MYSQL_DB" "$G_NEW" bank_a $FMT 4
# And one of an earlier boot, for recover.
G_OLD2="$IT_NODE.1.2"
my_prepare_by_hand "$XAC_TEST_MYSQL_DB" "$G_OLD2" bank_a $FMT 5

run_json -c "$IT_CONF" list
assert_eq 0 "$CTL_RC" "online list exit code"
assert_eq online "$(jq_py "j['mode']")" "list ran online"
assert_eq "committed|commit" "$(decision_of "$G_COMMIT" bank_b)" "online: $G_COMMIT on bank_b: committed"
assert_eq "foreign|leave (foreign)" "$(decision_of frn-my-2 bank_a)" "online: foreign MariaDB XID"
assert_eq "foreign|leave (foreign)" "$(decision_of $FOREIGN_PG bank_b)" "online: foreign PostgreSQL gid"
case $(decision_of "$G_NEW" bank_a) in
"none|roll back after grace ("*"s)") it_log "ok: online: this boot's undecided branch waits out the grace period" ;;
*) fail "online: $G_NEW: expected 'none|roll back after grace (Ns)', saw '$(decision_of "$G_NEW" bank_a)'" ;;
esac
assert_eq "none|roll back" "$(decision_of "$G_OLD2" bank_a)" "online: an earlier boot's undecided branch"

it_log "online refusals and resolutions"
run_ctl -c "$IT_CONF" --operator carol rollback "$G_COMMIT"
assert_eq 3 "$CTL_RC" "online rollback of a committed gtrid: refused (exit 3)"
assert_eq 1 "$(audit_count 'operator="carol" mode=online action=rollback resource="bank_b"' "$G_COMMIT" 'decision=committed force=no outcome="refused: ')" \
    "the online refusal is audited"
run_ctl -c "$IT_CONF" --operator carol commit "$G_NEW"
assert_eq 3 "$CTL_RC" "online commit without a decision: refused (exit 3)"
run_ctl -c "$IT_CONF" --operator carol rollback "'frn-my-2','b2',7"
assert_eq 3 "$CTL_RC" "online rollback of a foreign XID without --force: refused (exit 3)"
run_json -c "$IT_CONF" --operator carol commit "$G_COMMIT"
assert_eq 0 "$CTL_RC" "online commit of $G_COMMIT: exit 0"
assert_eq "online|done|bank_b" "$(jq_py "j['mode'] + '|' + j['results'][0]['outcome'] + '|' + j['results'][0]['resource']")" \
    "online commit result"
assert_eq "80 110 110" "$(bal a 1) $(bal b 1) $(bal c 1)" "$G_COMMIT committed everywhere"
assert_eq 1 "$(audit_count 'operator="carol" mode=online action=commit resource="bank_b"' "$G_COMMIT" 'decision=committed force=no outcome="committed"')" \
    "the online commit is audited"
run_ctl -c "$IT_CONF" --operator carol rollback "$G_NEW"
assert_eq 0 "$CTL_RC" "online rollback of this boot's undecided branch: exit 0"
# Listed under bank_a and bank_c (one MariaDB server): resolved once.
run_ctl -c "$IT_CONF" --operator carol --force rollback "'frn-my-2','b2',7"
assert_eq 0 "$CTL_RC" "online forced rollback of a foreign XID: exit 0"
assert_eq 1 "$(printf '%s\n' "$CTL_OUT" | grep -c "^rolled back 'frn-my-2'" || true)" \
    "a foreign XID seen through two resources of one server is rolled back once"
assert_eq 1 "$(audit_count 'operator="carol" mode=online action=rollback' "frn-my-2" 'decision=foreign force=yes outcome="rolled back (forced')" \
    "the forced online rollback is audited"

run_json -c "$IT_CONF" recover
assert_eq 0 "$CTL_RC" "online recover: exit 0"
assert_eq "online|bank_a|roll back|rolled back" \
    "$(jq_py "j['mode'] + '|' + '|'.join(next([a['resource'], a['action'], a['outcome']] for a in j['actions'] if '$G_OLD2' in a['xid']))")" \
    "online recover rolled back the earlier boot's branch"
run_json -c "$IT_CONF" list
assert_eq "$FOREIGN_PG" "$(jq_py "','.join(b['gtrid'] for b in j['branches'])")" \
    "only the foreign PostgreSQL gid is left in doubt"
pg_sql "ROLLBACK PREPARED '$FOREIGN_PG'" > /dev/null
stop_xacd
[ ! -e "$ADMIN" ] || fail "the admin socket is left behind after a clean stop"
it_log "ok: the admin socket is removed at exit"
assert_no_prepared "at the end"
n=$(grep -c . "$AUDIT")
assert_eq "$n" "$(grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z operator="[^"]+" mode=(online|offline) action=(commit|rollback) resource="[^"]*" xid=".*" decision=[a-z-]+ force=(yes|no) outcome=".*"$' "$AUDIT")" \
    "every audit line has the full format"
it_pass
