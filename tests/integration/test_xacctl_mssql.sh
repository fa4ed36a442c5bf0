#!/usr/bin/env bash
# SQL Server's in-doubt XA branches through the xp_sqljdbc_xa_* procedures:
# branches are seeded as prepared transactions directly in the TDS stand-in's
# PostgreSQL store (so this test needs the stand-in), then
#   1. offline (xacd stopped), `xacctl list` shows them next to MariaDB's and
#      PostgreSQL's: ours of an earlier run as "none: will roll back", another
#      transaction manager's as "foreign";
#   2. `xacctl commit` of ours is refused (no COMMIT record, exit 3); `xacctl
#      rollback` rolls it back through xp_sqljdbc_xa_rollback; `xacctl commit
#      --force` commits the foreign one through xp_sqljdbc_xa_commit; the data
#      shows each outcome;
#   3. online, the recovery loop rolls back a seeded branch of ours by itself,
#      and `xacctl list` through xacd still shows the foreign one, which
#      `xacctl rollback --force` resolves.
. "$(dirname "$0")/lib.sh"
it_setup
it_need_local_servers "seeds prepared branches in the TDS stand-in's PostgreSQL store"
[ -n "${XAC_TEST_MSSQL_HOST:-}" ] || fail "XAC_TEST_MSSQL_HOST is not set: tests/fixtures/db.sh starts the TDS stand-in"
T=it_xms
# Seeded branches left prepared would hold the table's locks: they go first.
it_drop_tables() {
    store_sql "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'tds:%' AND database = current_database()" 2> /dev/null |
        while read -r gid; do [ -n "$gid" ] && store_sql "ROLLBACK PREPARED '$gid'" > /dev/null 2>&1; done || true
    ms_sql "IF OBJECT_ID(N'$T', N'U') IS NOT NULL DROP TABLE $T" > /dev/null 2>&1 || true
}
it_write_config "$IT_CONF" bank_a bank_b bank_m
echo "recovery = { interval_ms = 500; grace_ms = 60000; retry_min_ms = 500; retry_max_ms = 2000; };" >> "$IT_CONF"
ms_sql "IF OBJECT_ID(N'$T', N'U') IS NOT NULL DROP TABLE $T" > /dev/null
ms_sql "CREATE TABLE $T (id INT PRIMARY KEY, what VARCHAR(40) NOT NULL)" > /dev/null

# seed ID FORMAT_ID GTRID BQUAL: a prepared branch inserting row ID, as the
# stand-in stores an XA prepare.
seed() {
    store_sql "BEGIN; INSERT INTO $T (id, what) VALUES ($1, 'seeded $3'); PREPARE TRANSACTION 'tds:$2.$(hex_of "$3").$(hex_of "$4")'" > /dev/null ||
        fail "could not seed a prepared branch in the stand-in's store"
}
row() { ms_sql "SELECT COUNT(*) FROM $T WHERE id = $1" | tr -d ' \t\r'; }
xacctl() {
    XC_RC=0
    XC_OUT=$("$XACCTL_BIN" -c "$IT_CONF" --operator it "$@" 2>&1) || XC_RC=$?
    printf '%s\n' "$XC_OUT" | sed "s/^/[$IT_NAME]   xacctl: /"
}

# A first start creates the journal that xacctl reads offline.
start_xacd
stop_xacd

FID=2019648305 # xac's format id, "xac1"
OURS="$IT_NODE.1.1"
OURS2="$IT_NODE.1.2"
FOREIGN="other-tm.42"
seed 1 $FID "$OURS" bank_m
seed 2 4660 "$FOREIGN" branch-1

it_log "1. offline listing"
xacctl list
assert_eq 0 "$XC_RC" "xacctl list exit code"
line=$(printf '%s\n' "$XC_OUT" | grep -F "$OURS" || true)
assert_contains "$line" "bank_m" "our seeded branch is listed under bank_m"
assert_contains "$line" "roll back" "our seeded branch, without a COMMIT record, will be rolled back"
line=$(printf '%s\n' "$XC_OUT" | grep -F "$FOREIGN" || true)
assert_contains "$line" "bank_m" "the foreign branch is listed under bank_m"
assert_contains "$line" "foreign" "another transaction manager's branch is foreign"

it_log "2. offline resolution"
xacctl --resource bank_m commit "$OURS"
assert_eq 3 "$XC_RC" "xacctl commit of a branch without a COMMIT record is refused"
assert_contains "$XC_OUT" "no COMMIT record" "the refusal says why"
assert_eq 0 "$(row 1)" "the refused commit left the row out"
xacctl --resource bank_m rollback "$OURS"
assert_eq 0 "$XC_RC" "xacctl rollback of our branch"
assert_eq 0 "$(row 1)" "rolled back: row 1 is not there"
xacctl --resource bank_m commit "'$FOREIGN','branch-1',4660"
assert_eq 3 "$XC_RC" "xacctl commit of a foreign branch without --force is refused"
xacctl --resource bank_m --force commit "'$FOREIGN','branch-1',4660"
assert_eq 0 "$XC_RC" "xacctl commit --force of the foreign branch"
assert_eq 1 "$(row 2)" "committed: row 2 is there"
xacctl list
assert_eq "" "$(printf '%s\n' "$XC_OUT" | grep -F -e "$OURS" -e "$FOREIGN" || true)" "nothing of the seeded branches is left in doubt"

it_log "3. online: the recovery loop and xacctl through xacd"
seed 3 $FID "$OURS2" bank_m
seed 4 4660 "$FOREIGN.2" branch-1
start_xacd
for i in $(seq 1 100); do
    [ -z "$(store_sql "SELECT gid FROM pg_prepared_xacts WHERE gid = 'tds:$FID.$(hex_of "$OURS2").$(hex_of bank_m)'")" ] && break
    sleep 0.2
done
assert_eq 0 "$(row 3)" "the recovery loop rolled back our branch of an earlier run"
assert_eq "" "$(store_sql "SELECT gid FROM pg_prepared_xacts WHERE gid = 'tds:$FID.$(hex_of "$OURS2").$(hex_of bank_m)'")" "our branch is no longer prepared"
xacctl list
assert_contains "$(printf '%s\n' "$XC_OUT" | grep -F "$FOREIGN.2" || true)" "foreign" "online: the foreign branch is listed"
xacctl --resource bank_m --force rollback "'$FOREIGN.2','branch-1',4660"
assert_eq 0 "$XC_RC" "online xacctl rollback --force of the foreign branch"
assert_eq 0 "$(row 4)" "rolled back: row 4 is not there"
stop_xacd
it_pass
