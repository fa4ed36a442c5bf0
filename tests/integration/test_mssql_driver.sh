#!/usr/bin/env bash
# The mssql driver through the driver API (prog_mssql_check), against the TDS
# stand-in of tests/tds/ (or a real SQL Server for the basic checks): local
# transactions, the last-resource commit with its marker and fence, errors
# and their XA codes, recovery of branches seeded as prepared transactions in
# the stand-in's PostgreSQL store (commit and rollback by XID, and a malformed
# recover record refused), and a server restart under a pooled connection.
. "$(dirname "$0")/lib.sh"

for v in XAC_TEST_MSSQL_HOST XAC_TEST_MSSQL_PORT XAC_TEST_MSSQL_USER XAC_TEST_MSSQL_PASSWORD \
    XAC_TEST_MSSQL_DB; do
    [ -n "${!v:-}" ] || fail "$v is not set: start the servers with tests/fixtures/db.sh start DIR
(it starts the TDS stand-in too) and '. DIR/env.sh'"
done
it_setup_nodb prog_mssql_check
PROG=$IT_PROG
SRC=${XAC_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}

it_log "basic checks"
"$PROG" basic || fail "prog_mssql_check basic failed (see above)"
it_log "errors on concurrent connections reach their own connection"
"$PROG" threads || fail "prog_mssql_check threads failed (see above)"

if [ "${XAC_TEST_EXTERNAL:-0}" = 1 ]; then
    it_log "recover and reconnect skipped: they seed the stand-in's store and restart it"
    it_pass
    exit 0
fi
[ -n "${XAC_TEST_DIR:-}" ] || fail "XAC_TEST_DIR is not set ('. DIR/env.sh' of tests/fixtures/db.sh)"


T=ms_rec_$$
SEEDED=()
cleanup_seeded() {
    local g
    for g in "${SEEDED[@]}"; do
        store_sql "ROLLBACK PREPARED '$g'" > /dev/null 2>&1 || true
    done
    store_sql "DROP TABLE IF EXISTS $T" > /dev/null 2>&1 || true
}
trap 'cleanup_seeded; it_cleanup' EXIT

# seed FID GTRID BQUAL ID: a prepared branch that inserted ID into $T.
seed() {
    local gid="tds:$1.$(hex_of "$2").$(hex_of "$3")"
    store_sql "BEGIN; INSERT INTO $T (id) VALUES ($4); PREPARE TRANSACTION '$gid';" > /dev/null ||
        fail "cannot seed prepared branch $gid"
    SEEDED+=("$gid")
}
rows() { store_sql "SELECT COUNT(*) FROM $T WHERE id = $1"; }

store_sql "CREATE TABLE $T (id INT PRIMARY KEY)" > /dev/null || fail "cannot create $T in the stand-in's store"

it_log "recover, then commit by XID"
seed 2019882801 "xr.$$.1" ms1 1
[ "$(rows 1)" = 0 ] || fail "the seeded branch's row is visible before the commit"
"$PROG" recover 2019882801 "xr.$$.1" ms1 commit || fail "recover + commit by XID failed"
[ "$(rows 1)" = 1 ] || fail "commit by XID did not make the row visible"

it_log "recover, then rollback by XID (a foreign format id)"
seed 7 "foreign-$$" branch-b 2
"$PROG" recover 7 "foreign-$$" branch-b rollback || fail "recover + rollback by XID failed"
[ "$(rows 2)" = 0 ] || fail "rollback by XID left the row"

it_log "a recover record whose gtrid is over 64 bytes is refused"
long=$(printf 'g%.0s' $(seq 1 70))
seed 7 "$long" b 3
out=$("$PROG" recover 7 "x" b commit 2>&1) && fail "recover accepted a 70-byte gtrid: $out"
printf '%s\n' "$out" | grep "malformed data" > /dev/null || fail "recover's message does not say malformed: $out"
printf '%s\n' "$out" | grep "over 64" > /dev/null || fail "recover's message does not give the reason: $out"
store_sql "ROLLBACK PREPARED '${SEEDED[-1]}'" > /dev/null
unset 'SEEDED[-1]'

it_log "a statement slower than the I/O timeout"
# pg_sleep: the stand-in hands it to PostgreSQL (WAITFOR on a real server).
"$PROG" timeout "SELECT pg_sleep(4)" || fail "timeout checks failed (see above)"

it_log "the stand-in is killed and restarted under a pooled connection"
"$PROG" reconnect "'$SRC/tests/fixtures/db.sh' kill-tds '$XAC_TEST_DIR' && '$SRC/tests/fixtures/db.sh' start-tds '$XAC_TEST_DIR'" ||
    fail "reconnect checks failed (see above)"

it_pass
it_log "PASS"
