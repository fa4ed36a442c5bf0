#!/usr/bin/env bash
# The SQL Server stand-in (tests/tds/tds_server.py) behaves as the mssql
# driver's tests assume, checked from the outside with FreeTDS's tsql and the
# stand-in's scripted client, and in its PostgreSQL store with psql: login and
# bad password (18456), a table round trip, commit and rollback visibility, a
# client that dies mid-transaction, per-statement rollback inside a
# transaction, error numbers 2627/547/208, a deadlock (1205, transaction
# gone), the xp_sqljdbc_xa_* procedures (recover of a branch seeded in
# PostgreSQL, commit/rollback by XID, a full start..prepare..commit that
# survives a kill of the stand-in), attention, and garbage on the wire.
. "$(dirname "$0")/lib.sh"
it_need_local_servers "kills the stand-in and reads its PostgreSQL store"
it_setup
for v in XAC_TEST_MSSQL_HOST XAC_TEST_MSSQL_PORT XAC_TEST_MSSQL_USER XAC_TEST_MSSQL_PASSWORD XAC_TEST_MSSQL_DB \
    XAC_TEST_TDS_PG_DB XAC_TEST_DIR; do
    [ -n "${!v:-}" ] || fail "$v is not set: DIR/env.sh is from before the TDS stand-in; restart the servers (tests/fixtures/db.sh stop DIR; tests/fixtures/db.sh start DIR)"
done
command -v tsql > /dev/null || fail "tsql is missing (apt-get install freetds-bin)"

T=it_tds_t
P=it_tds_parent
C=it_tds_child
D=it_tds_dl
CLIENT=(/usr/bin/python3 "$XAC_SOURCE_DIR/tests/tds/tds_client.py" --host "$XAC_TEST_MSSQL_HOST"
    --port "$XAC_TEST_MSSQL_PORT" --user "$XAC_TEST_MSSQL_USER" --password "$XAC_TEST_MSSQL_PASSWORD"
    --db "$XAC_TEST_MSSQL_DB")
DB_SH=$XAC_SOURCE_DIR/tests/fixtures/db.sh
# gtrids of this test: "it-tds." + a number (hex in the gids)
GT_HEX=$(hex_of it-tds.)

# tq SQL: runs a batch with tsql; prints rows and messages (Msg N lines too).
tq() {
    printf '%s\ngo\n' "$1" | TDSVER=7.4 tsql -H "$XAC_TEST_MSSQL_HOST" -p "$XAC_TEST_MSSQL_PORT" \
        -U "${TQ_USER:-$XAC_TEST_MSSQL_USER}" -P "${TQ_PASSWORD:-$XAC_TEST_MSSQL_PASSWORD}" \
        -D "$XAC_TEST_MSSQL_DB" -o fhq 2>&1 |
        grep -v -e '^$' -e '^locale' -e '^using default charset' -e '^Setting ' || true
}
# tc JSON...: runs the scripted client; prints its token lines.
tc() { "${CLIENT[@]}" "$@" 2>&1 || true; }
count() { store_sql "SELECT count(*) FROM $T WHERE id = $1"; }
# Waits (bounded) until QUERY on the store prints WANT.
wait_store() {
    local want=$1 q=$2 got=""
    for _ in $(seq 1 200); do
        got=$(store_sql "$q")
        [ "$got" = "$want" ] && return 0
        sleep 0.05
    done
    fail "waited for '$q' to be $want, it is $got"
}
seed_prepared() { # ID GTRID_SUFFIX_HEX: a branch prepared directly in the store
    store_sql "BEGIN; INSERT INTO $T (id, name) VALUES ($1, 'seeded'); PREPARE TRANSACTION 'tds:77.$GT_HEX$2.01';" > /dev/null
}
it_drop_tables() {
    local g
    for g in $(store_sql "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'tds:%.$GT_HEX%'"); do
        store_sql "ROLLBACK PREPARED '$g'" > /dev/null
    done
    store_sql "SET lock_timeout = '10s'; DROP TABLE IF EXISTS $C, $P, $T, $D" > /dev/null
}
it_drop_tables

it_log "login: good password, then a wrong one (18456)"
assert_eq "1" "$(tq 'SELECT 1')" "SELECT 1 through tsql"
out=$(TQ_PASSWORD=wrong tq 'SELECT 1')
assert_contains "$out" "Msg 18456" "tsql with a wrong password"
assert_contains "$out" "Login failed for user '$XAC_TEST_MSSQL_USER'" "tsql with a wrong password"

it_log "a table round trip (T-SQL DDL, N'' literals, TOP, types)"
out=$(tq "IF OBJECT_ID(N'$T', N'U') IS NULL CREATE TABLE $T (id BIGINT NOT NULL PRIMARY KEY, name NVARCHAR(50), f FLOAT, b BIT, v VARBINARY(MAX), big NVARCHAR(MAX))
INSERT INTO $T (id, name, f, b, v) VALUES (1, N'one', 1.5, 1, 0x), (2, N'two', -2.25, 0, NULL)
SELECT TOP 1 id, name, f, b FROM $T ORDER BY id DESC")
assert_eq "2	two	-2.25	0" "$out" "round trip through tsql"
assert_eq "double precision|smallint|bytea" \
    "$(store_sql "SELECT string_agg(data_type, '|' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = '$T' AND column_name IN ('f','b','v')")" \
    "column types in the store"
assert_eq "1|one|1.5|1" "$(store_sql "SELECT id, name, f, b FROM $T WHERE id = 1")" "row 1 in the store"
out=$(tq "IF OBJECT_ID(N'$T', N'U') IS NULL CREATE TABLE $T (id INT)
SELECT COUNT(*) FROM $T")
assert_eq "2" "$out" "IF OBJECT_ID ... IS NULL CREATE TABLE on an existing table keeps it"

it_log "sp_executesql with typed parameters"
out=$(tc '["exec","INSERT INTO '$T' (id, name, f, b, v, big) VALUES (@P1, @P2, @P3, @P4, @P5, @P6)","i:3","s:thrée","f:0.125","t:1","b:00ff10","s:'"$(head -c 9000 /dev/zero | tr '\0' x)"'"]' \
    '["exec","SELECT name, v, length(big) FROM '$T' WHERE id = @P1 AND (@P2 IS NULL OR name <> @P2)","i:3","n:"]')
assert_contains "$out" "doneinproc status 0x11 cmd 0xc3 count 1" "sp_executesql INSERT"
assert_contains "$out" "row thrée	0x00ff10	9000" "sp_executesql SELECT with a NULL parameter"
assert_eq "3|thrée|0.125|1|\\x00ff10" "$(store_sql "SELECT id, name, f, b, v FROM $T WHERE id = 3")" "row 3 in the store"

it_log "commit vs rollback, and nothing visible before the commit"
tq "BEGIN TRANSACTION
INSERT INTO $T (id) VALUES (10)
COMMIT TRANSACTION" > /dev/null
assert_eq "1" "$(count 10)" "committed row"
tq "BEGIN TRAN; INSERT INTO $T (id) VALUES (11); ROLLBACK TRAN" > /dev/null
assert_eq "0" "$(count 11)" "rolled back row"
tc '["batch","BEGIN TRANSACTION; INSERT INTO '$T' (id) VALUES (12)"]' '["touch","'"$IT_DIR/f1"'"]' \
    '["wait-file","'"$IT_DIR/f2"'"]' '["batch","SELECT @@TRANCOUNT; COMMIT TRANSACTION"]' > "$IT_DIR/c12.out" &
cpid=$!
for _ in $(seq 1 600); do [ -f "$IT_DIR/f1" ] && break; sleep 0.05; done
[ -f "$IT_DIR/f1" ] || fail "the client did not begin its transaction"
assert_eq "0" "$(count 12)" "row of an open transaction, seen from outside"
touch "$IT_DIR/f2"
wait "$cpid"
assert_contains "$(cat "$IT_DIR/c12.out")" "row 1" "@@TRANCOUNT inside the transaction"
assert_eq "1" "$(count 12)" "row after the commit"

it_log "transaction manager requests (begin/commit/rollback) and TDS 7.1"
out=$(tc '["tm","begin"]' '["batch","INSERT INTO '$T' (id) VALUES (13)"]' '["tm","rollback"]' \
    '["tm","begin"]' '["batch","INSERT INTO '$T' (id) VALUES (14)"]' '["tm","commit"]')
assert_eq "8 10 8 9" "$(grep -o '^envchange \(8\|9\|10\) ' <<< "$out" | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')" \
    "ENVCHANGE begin, rollback, begin, commit"
assert_eq "0 1" "$(count 13) $(count 14)" "rows after TM rollback and TM commit"
assert_eq "2	two" "$(printf 'SELECT id, name FROM %s WHERE id = 2\ngo\n' "$T" | TDSVER=7.1 tsql -H "$XAC_TEST_MSSQL_HOST" \
    -p "$XAC_TEST_MSSQL_PORT" -U "$XAC_TEST_MSSQL_USER" -P "$XAC_TEST_MSSQL_PASSWORD" -D "$XAC_TEST_MSSQL_DB" -o fhq 2> /dev/null)" \
    "a TDS 7.1 client"

it_log "a client that dies mid-transaction: rolled back, locks released"
out=$(tc '["batch","BEGIN TRAN; INSERT INTO '$T' (id) VALUES (20); UPDATE '$T' SET name = '"'"'locked'"'"' WHERE id = 1"]' '["crash"]')
assert_contains "$out" "> crash" "the client ran until its crash"
wait_store 0 "SELECT count(*) FROM pg_stat_activity WHERE datname = '$XAC_TEST_TDS_PG_DB' AND state LIKE 'idle in transaction%'"
assert_eq "0" "$(count 20)" "row of the dead client's transaction"
assert_eq "1	one" "$(tq "UPDATE $T SET name = N'one' WHERE id = 1; SELECT id, name FROM $T WHERE id = 1")" \
    "row 1 is free again"

it_log "SET LOCK_TIMEOUT: a lock wait over it is error 1222"
tc '["batch","BEGIN TRAN; UPDATE '$T' SET name = N'"'"'held'"'"' WHERE id = 1"]' '["touch","'"$IT_DIR/l1"'"]' \
    '["wait-file","'"$IT_DIR/l2"'"]' '["batch","ROLLBACK"]' > /dev/null &
lpid=$!
for _ in $(seq 1 600); do [ -f "$IT_DIR/l1" ] && break; sleep 0.05; done
out=$(tq "SET LOCK_TIMEOUT 100
UPDATE $T SET name = N'x' WHERE id = 1")
touch "$IT_DIR/l2"
wait "$lpid"
assert_contains "$out" "Msg 1222" "update of a locked row with a lock timeout"
assert_eq "one" "$(store_sql "SELECT name FROM $T WHERE id = 1")" "row 1 after the lock timeout and the rollback"

it_log "inside a transaction a failing statement is undone alone (no XACT_ABORT)"
out=$(tq "BEGIN TRAN
INSERT INTO $T (id) VALUES (30)
INSERT INTO $T (id) VALUES (30)
INSERT INTO $T (id) VALUES (31)
COMMIT")
assert_contains "$out" "Msg 2627" "duplicate key inside a transaction"
assert_eq "1 1" "$(count 30) $(count 31)" "the statements around the failed one committed"
out=$(tq "SET XACT_ABORT ON; BEGIN TRAN; INSERT INTO $T (id) VALUES (32); INSERT INTO $T (id) VALUES (1); COMMIT")
assert_contains "$out" "Msg 2627" "duplicate key with XACT_ABORT ON"
assert_eq "0" "$(count 32)" "with XACT_ABORT ON the whole transaction is rolled back"

it_log "error numbers: 2627, 547, 208 (as tsql shows them)"
out=$(tq "INSERT INTO $T (id) VALUES (1)")
assert_contains "$out" "Msg 2627 (severity 14" "duplicate primary key"
assert_contains "$out" "Violation of PRIMARY KEY constraint" "duplicate primary key text"
tq "CREATE TABLE $P (id INT PRIMARY KEY)
CREATE TABLE $C (id INT PRIMARY KEY, pid INT NOT NULL REFERENCES $P (id))" > /dev/null
out=$(tq "INSERT INTO $C (id, pid) VALUES (1, 42)")
assert_contains "$out" "Msg 547 (severity 16" "foreign key violation"
out=$(tq "SELECT * FROM it_tds_no_such_table")
assert_contains "$out" "Msg 208 (severity 16" "missing table"
assert_contains "$out" "Invalid object name 'it_tds_no_such_table'." "missing table text"
out=$(tq "RAISERROR('it tds raised', 16, 1)
THROW 51234, 'it tds thrown', 1")
assert_contains "$out" "Msg 50000" "RAISERROR"
assert_contains "$out" "Msg 51234" "THROW hook"

it_log "a deadlock: 1205 to the victim, whose transaction is gone"
tq "CREATE TABLE $D (id INT PRIMARY KEY, v INT); INSERT INTO $D VALUES (1, 0), (2, 0)" > /dev/null
rm -f "$IT_DIR"/d?
tc '["batch","BEGIN TRAN; UPDATE '$D' SET v = 1 WHERE id = 1"]' '["touch","'"$IT_DIR/da"'"]' \
    '["wait-file","'"$IT_DIR/db"'"]' '["batch","UPDATE '$D' SET v = 1 WHERE id = 2"]' \
    '["batch","SELECT @@TRANCOUNT; IF @@TRANCOUNT > 0 COMMIT TRAN"]' > "$IT_DIR/da.out" &
apid=$!
for _ in $(seq 1 600); do [ -f "$IT_DIR/da" ] && break; sleep 0.05; done
tc '["batch","BEGIN TRAN; UPDATE '$D' SET v = 2 WHERE id = 2"]' '["touch","'"$IT_DIR/db"'"]' \
    '["wait-file","'"$IT_DIR/dc"'"]' '["batch","UPDATE '$D' SET v = 2 WHERE id = 1"]' \
    '["batch","SELECT @@TRANCOUNT; IF @@TRANCOUNT > 0 COMMIT TRAN"]' > "$IT_DIR/db.out" &
bpid=$!
# B goes for row 1 once A waits for row 2: a cycle
wait_store 1 "SELECT count(*) FROM pg_stat_activity WHERE datname = '$XAC_TEST_TDS_PG_DB' AND wait_event_type = 'Lock'"
touch "$IT_DIR/dc"
wait "$apid" "$bpid"
both=$(cat "$IT_DIR/da.out" "$IT_DIR/db.out")
assert_eq "1" "$(grep -c 'error 1205 class 13' <<< "$both")" "exactly one deadlock victim"
if grep -q 'error 1205' "$IT_DIR/da.out"; then victim=a winner=2; else victim=b winner=1; fi
assert_contains "$(cat "$IT_DIR/d$victim.out")" "envchange 10 " "the victim's transaction was rolled back (ENVCHANGE 10)"
assert_eq "row 0" "$(grep '^row' "$IT_DIR/d$victim.out")" "the victim's @@TRANCOUNT after the deadlock"
assert_eq "$winner|$winner" "$(store_sql "SELECT string_agg(v::text, '|' ORDER BY id) FROM $D")" \
    "only the winner's updates are there"

it_log "xp_sqljdbc_xa_recover lists a branch prepared directly in PostgreSQL; commit/rollback by XID"
seed_prepared 40 "3430"
seed_prepared 41 "3431"
out=$(tc '["xa","recover",0,"","",25165824]')
assert_contains "$out" "return @status 0" "recover status"
assert_contains "$out" "xid 77 ${GT_HEX}3430 01" "recover lists the seeded branch 40"
assert_contains "$out" "xid 77 ${GT_HEX}3431 01" "recover lists the seeded branch 41"
out=$(tc '["xa","commit",77,"'"${GT_HEX}3430"'","01",0]' '["xa","rollback",77,"'"${GT_HEX}3431"'","01"]' \
    '["xa","commit",77,"'"${GT_HEX}3430"'","01",0]' '["xa","recover",0,"","",25165824]')
assert_eq "return @status 0
return @status 0
return @status -4
return @status 0" "$(grep '^return @status' <<< "$out")" "commit, rollback, commit again (XAER_NOTA), recover"
assert_contains "$out" "return @err unknown XID" "XAER_NOTA text"
if grep -q "xid 77 $GT_HEX" <<< "$out"; then fail "recover still lists a finished branch: $out"; fi
assert_eq "1 0" "$(count 40) $(count 41)" "committed and rolled back seeded branches"

it_log "an XA branch through the stand-in: start, propagate, work, end, prepare; kill; recover; commit"
out=$(tc '["xa","start",77,"'"${GT_HEX}3530"'","02",0]' '["propagate"]' \
    '["batch","INSERT INTO '$T' (id, name) VALUES (50, N'"'"'xa'"'"')"]' \
    '["xa","end",77,"'"${GT_HEX}3530"'","02",67108864]' '["propagate",""]' '["xa","prepare",77,"'"${GT_HEX}3530"'","02"]' \
    '["xa","start",77,"'"${GT_HEX}3530"'","02",0]')
assert_eq "return @status 0
return @status 0
return @status 0
return @status -8" "$(grep '^return @status' <<< "$out")" "start, end, prepare, start again (XAER_DUPID)"
assert_eq "tds:77.${GT_HEX}3530.02" "$(store_sql "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'tds:77.${GT_HEX}35%'")" \
    "the prepared branch's gid in PostgreSQL"
assert_eq "0" "$(count 50)" "a prepared branch's row is not visible"
"$DB_SH" kill-tds "$XAC_TEST_DIR"
out=$(tc '["batch","SELECT 1"]')
assert_contains "$out" "closed:" "the stand-in is down after kill-tds"
"$DB_SH" start-tds "$XAC_TEST_DIR"
out=$(tc '["xa","recover",0,"","",25165824]' '["xa","commit",77,"'"${GT_HEX}3530"'","02",0]')
assert_contains "$out" "xid 77 ${GT_HEX}3530 02" "the prepared branch survives a kill of the stand-in"
assert_eq "1" "$(count 50)" "the branch's row after commit by XID"
out=$(tc '["xa","start",77,"'"${GT_HEX}3630"'","02",0]' '["propagate"]' '["batch","INSERT INTO '$T' (id) VALUES (60)"]' \
    '["xa","end",77,"'"${GT_HEX}3630"'","02",67108864]' '["xa","commit",77,"'"${GT_HEX}3630"'","02",1073741824]')
assert_eq "1" "$(count 60)" "one-phase commit of an active branch"

it_log "PostgreSQL dies under an open transaction: the stand-in drops that client, then serves again"
tc '["batch","BEGIN TRAN; INSERT INTO '$T' (id) VALUES (70)"]' '["touch","'"$IT_DIR/p1"'"]' \
    '["wait-file","'"$IT_DIR/p2"'"]' '["batch","COMMIT TRAN"]' > "$IT_DIR/p.out" &
ppid=$!
for _ in $(seq 1 600); do [ -f "$IT_DIR/p1" ] && break; sleep 0.05; done
"$DB_SH" kill-pg "$XAC_TEST_DIR"
"$DB_SH" start-pg "$XAC_TEST_DIR"
touch "$IT_DIR/p2"
wait "$ppid"
assert_contains "$(cat "$IT_DIR/p.out")" "closed: server closed the connection" "the client's connection after PostgreSQL died"
assert_eq "0" "$(count 70)" "the open transaction's row after PostgreSQL's crash"
assert_eq "1" "$(tq 'SELECT 1')" "a new session after PostgreSQL's restart"

it_log "attention cancels a running statement; garbage on the wire closes only that connection"
out=$(tc '["send-then-attention","SELECT pg_sleep(30)",0.5]' '["batch","SELECT 7"]')
assert_contains "$out" "done status 0x20" "attention acknowledged"
assert_contains "$out" "row 7" "the session works after the attention"
log_lines=$(wc -l < "$XAC_TEST_DIR/tds/tds.log")
# HTTP, then a PRELOGIN whose options point outside the message
(exec 3<> "/dev/tcp/$XAC_TEST_MSSQL_HOST/$XAC_TEST_MSSQL_PORT" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 &&
    cat <&3 > /dev/null) 2> /dev/null || true
(exec 3<> "/dev/tcp/$XAC_TEST_MSSQL_HOST/$XAC_TEST_MSSQL_PORT" &&
    printf '\x12\x01\x00\x10\x00\x00\x01\x00\x01\x00\x40\x00\x01\xff\x00\x00' >&3 &&
    cat <&3 > /dev/null) 2> /dev/null || true
assert_eq "1" "$(tq 'SELECT 1')" "the stand-in still serves after garbage"
out=$(tail -n +"$((log_lines + 1))" "$XAC_TEST_DIR/tds/tds.log")
assert_eq "2" "$(grep -c 'protocol error' <<< "$out")" "protocol errors logged for the two garbage connections"

it_drop_tables
it_pass
