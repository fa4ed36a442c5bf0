#!/usr/bin/env bash
# The decision journal fails under a running xacd (XAC_JOURNAL_FAULT, or a
# full file system), against real MariaDB and PostgreSQL:
#   a) fdatasync fails, the failed batch is cut off again: the COMMIT rolls
#      back everywhere, later COMMITs are refused until a restart, xacd keeps
#      serving; after a restart commits work again.
#   b) fdatasync fails and so does the cut: the outcome is unknown (ERROR
#      EJOURNAL), the branches stay prepared on both databases, STATUS claims
#      no outcome; the restart's recovery settles it all-or-nothing.
#   c) the journal's file system is full when a new segment is needed: that
#      COMMIT rolls back with ENOSPC, xacd stays up, and once space is back
#      commits work without a restart.
#   d) group commit: concurrent clients, the money adds up.
#   e) a corrupt journal: xacd refuses to start and names --salvage-journal;
#      with it, xacd starts but leaves undecided branches prepared; the next
#      plain start rolls them back.
. "$(dirname "$0")/lib.sh"
it_setup
T=it_jfail
it_drop_tables() { drop_accounts $T; }

JF_MNT=$IT_DIR/jfs
JF_MOUNTED=0
# it_setup's trap runs it_cleanup; xacd must be gone before the tmpfs can go,
# and the tmpfs before it_cleanup removes the temp dir.
jf_cleanup() {
    local rc=$?
    set +e
    if [ -n "$IT_XACD_PID" ] && kill -0 "$IT_XACD_PID" 2> /dev/null; then
        kill -9 "$IT_XACD_PID" 2> /dev/null
        wait "$IT_XACD_PID" 2> /dev/null
    fi
    IT_XACD_PID=""
    [ "$JF_MOUNTED" = 0 ] || umount "$JF_MNT" 2> /dev/null || umount -l "$JF_MNT" 2> /dev/null
    (exit "$rc")
    it_cleanup
}
trap jf_cleanup EXIT

# transfer AMOUNT: bank_a -> bank_b on account 1, through xac.
transfer() {
    run_xac "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i "$1" -i 1 \
        "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i "$1" -i 1
}

balances() { echo "$(bal_a $T) $(bal_b $T)"; }

# Hand-made frames for replies xac does not show.
it_rawframe_setup

# The gtrid in xac's last line, whatever the outcome.
last_gtrid() {
    printf '%s\n' "$XAC_LAST" | grep -o "$IT_NODE\.[0-9a-f]*\.[0-9a-f]*" | head -1 || true
}

# count_branches GTRID: "MARIADB POSTGRESQL" prepared branches of GTRID.
count_branches() {
    local hex m p
    hex=$(hex_of "$1")
    m=$(my_prepared | grep -ci "^X'$hex'" || true)
    p=0
    local gid g
    for gid in $(pg_prepared); do
        g=${gid#*.}
        g=${g%%.*}
        g=$(printf '%s' "$g" | tr '_-' '/+')
        while [ $((${#g} % 4)) != 0 ]; do g="$g="; done
        [ "$(printf '%s' "$g" | base64 -d 2> /dev/null)" = "$1" ] && p=$((p + 1))
    done
    echo "$m $p"
}

# ---------------------------------------------------------------- a) sync
it_log "---- a) fdatasync fails (XAC_JOURNAL_FAULT=sync): rolled back, journal failed for good"
make_accounts $T 100
start_xacd XAC_JOURNAL_FAULT=sync
transfer 10
expect_rolled_back "" "a: the COMMIT whose fdatasync failed"
assert_contains "$XAC_LAST" ": journal: " "a: the message starts with 'journal: ' and names no resource"
assert_contains "$XAC_LAST" "fdatasync" "a: the message names fdatasync"
assert_contains "$XAC_LAST" "Input/output error" "a: the message has the errno text"
g1=$(last_gtrid)
assert_eq "100 100" "$(balances)" "a: balances after the failed COMMIT"
assert_no_prepared "a: after the failed COMMIT"
it_log "ok: a: no prepared branch on either database"
assert_eq ROLLED_BACK "$(state_of "$g1")" "a: STATUS of the rolled-back transaction"

transfer 5
expect_rolled_back "" "a: a second COMMIT on the failed journal"
assert_contains "$XAC_LAST" ": journal: " "a: the second refusal is a journal one"
assert_contains "$XAC_LAST" "restart" "a: the refusal says a restart is needed"
assert_eq "100 100" "$(balances)" "a: balances after the second refusal"
assert_no_prepared "a: after the second refusal"
assert_xacd_alive "two refused commits"
run_xac "bank_a: UPDATE $T SET balance = balance - 1 WHERE id = 1"
expect_committed "a: a one-resource commit needs no journal and still works"
assert_eq "99 100" "$(balances)" "a: balances after the one-phase commit"
stop_xacd

start_xacd
transfer 9
expect_committed "a: a transfer after the restart without the fault"
assert_eq "90 109" "$(balances)" "a: balances after the restart"
assert_no_prepared "a: after the restart"
stop_xacd

# ------------------------------------------------------------ b) sync,cut
it_log "---- b) fdatasync fails and the cut too (XAC_JOURNAL_FAULT=sync,cut): outcome unknown"
make_accounts $T 100
start_xacd XAC_JOURNAL_FAULT=sync,cut
# Through prog_rawframe, which shows the reply's code as it travels.
raw "$HELLO" "$BEGIN" \
    "$(exec_frame bank_a "UPDATE $T SET balance = balance - 10 WHERE id = 1")" \
    "$(exec_frame bank_b "UPDATE $T SET balance = balance + 10 WHERE id = 1")" "$COMMIT"
g2=$(printf '%s\n' "${RAW[1]}" | sed -n 's/^BEGUN //p')
assert_contains "${RAW[4]}" "ERROR XAC_EJOURNAL resource= message=" "b: COMMIT gets ERROR EJOURNAL, no resource"
assert_contains "${RAW[4]}" "outcome unknown" "b: the message says the outcome is unknown"
assert_contains "${RAW[4]}" "restarts with a working journal" "b: the message says when it is settled"
assert_contains "${RAW[4]}" "STATUS" "b: the message points to STATUS"
[ -n "$g2" ] || fail "b: no gtrid in '$XAC_LAST'"
assert_eq "1 1" "$(count_branches "$g2")" "b: prepared branches of $g2 on MariaDB and PostgreSQL"
assert_eq PREPARING "$(state_of "$g2")" "b: STATUS claims no outcome"
assert_xacd_alive "an unknown outcome"
stop_xacd
wait_mysql_sessions_gone
assert_eq "1 1" "$(count_branches "$g2")" "b: the branches survive xacd's shutdown"

start_xacd
# The record reached the segment file (only its fdatasync was failed), so the
# restart's replay finds the COMMIT: both sides commit.
a=$(bal_a $T)
b=$(bal_b $T)
case "$a $b" in
"90 110" | "100 100") it_log "ok: b: both sides agree after recovery ($a $b)" ;;
*) fail "b: the sides disagree after recovery: bank_a $a, bank_b $b" ;;
esac
assert_eq "90 110" "$a $b" "b: the replayed COMMIT was carried out on both sides"
assert_no_prepared "b: after recovery"
assert_eq COMMITTED "$(state_of "$g2")" "b: STATUS after the restart"
transfer 1
expect_committed "b: a transfer after recovery"
assert_eq "89 111" "$(balances)" "b: balances after one more transfer"
stop_xacd

# ------------------------------------------------------------ c) full disk
it_log "---- c) no space for the next journal segment"
make_accounts $T 1000000
SEG=65536
it_write_config "$IT_DIR/small.conf"
if mkdir -p "$JF_MNT" && mount -t tmpfs -o size=1m,mode=0700 tmpfs "$JF_MNT" 2> /dev/null; then
    JF_MOUNTED=1
    it_log "c: runs on a 1 MiB tmpfs filled up to one ${SEG}-byte segment and a half"
    sed -i "s|^journal_dir = .*|journal_dir = \"$JF_MNT/journal\";\njournal_segment_size = \"64K\";|" \
        "$IT_DIR/small.conf"
    # Leave room for one segment (and the lock file), not for two.
    free=$(df -B1 --output=avail "$JF_MNT" | tail -1 | tr -d ' ')
    dd if=/dev/zero of="$JF_MNT/filler" bs=4096 count=$(((free - SEG - SEG / 2) / 4096)) status=none
    IT_START_CONF=$IT_DIR/small.conf start_xacd
    fault=""
else
    it_log "c: mount -t tmpfs is not permitted here: runs with XAC_JOURNAL_FAULT=create:1:ENOSPC instead"
    sed -i "s|^journal_dir = .*|journal_dir = \"$IT_DIR/small-journal\";\njournal_segment_size = \"64K\";|" \
        "$IT_DIR/small.conf"
    # The first segment exists before the fault is armed.
    IT_START_CONF=$IT_DIR/small.conf start_xacd
    transfer 1
    expect_committed "c: a transfer before the fault"
    done_before=1
    stop_xacd
    fault=XAC_JOURNAL_FAULT=create:1:ENOSPC
    IT_START_CONF=$IT_DIR/small.conf start_xacd $fault
fi
grep -q '^journal_segment_size = "64K";$' "$IT_DIR/small.conf" || fail "c: the config has no journal_segment_size"
n=0
while :; do
    transfer 1 > /dev/null
    n=$((n + 1))
    [ "$XAC_RC" = 0 ] || break
    [ "$n" -lt 5000 ] || fail "c: 5000 transfers went through: the journal never ran out of space"
done
it_log "c: transfer $n was refused: $XAC_LAST"
before="$((1000000 - (n - 1) - ${done_before:-0})) $((1000000 + (n - 1) + ${done_before:-0}))"
expect_rolled_back "" "c: the COMMIT that needed a new segment"
assert_contains "$XAC_LAST" ": journal: " "c: the refusal is a journal one"
case $XAC_LAST in
*"No space left on device"* | *ENOSPC*) it_log "ok: c: the message names ENOSPC" ;;
*) fail "c: expected ENOSPC in '$XAC_LAST'" ;;
esac
assert_eq "$before" "$(balances)" "c: balances unchanged by the refused COMMIT"
assert_no_prepared "c: after the refusal"
assert_xacd_alive "a full journal file system"
if [ -z "$fault" ]; then
    rm -f "$JF_MNT/filler"
    transfer 1
    expect_committed "c: a transfer once space is back, same xacd"
    transfer 1
    expect_committed "c: and another"
    stop_xacd
else
    stop_xacd
    IT_START_CONF=$IT_DIR/small.conf start_xacd
    transfer 1
    expect_committed "c: a transfer after a restart without the fault"
    stop_xacd
fi
a=$(bal_a $T)
b=$(bal_b $T)
assert_eq 2000000 $((a + b)) "c: no money appeared or vanished"
assert_no_prepared "c: at the end"

# ---------------------------------------------------------- d) group commit
it_log "---- d) 8 concurrent clients, 10 transfers each, one account each"
make_accounts $T 100
for i in 2 3 4 5 6 7 8; do
    my_sql "$XAC_TEST_MYSQL_DB" "INSERT INTO $T VALUES ($i, 100)"
    pg_sql "INSERT INTO $T VALUES ($i, 100)" > /dev/null
done
start_xacd
pids=()
for i in 1 2 3 4 5 6 7 8; do
    (
        for _ in $(seq 1 10); do
            "$XAC_BIN" -q "bank_a: UPDATE $T SET balance = balance - ? WHERE id = ?" -i 1 -i "$i" \
                "bank_b: UPDATE $T SET balance = balance + ? WHERE id = ?" -i 1 -i "$i" ||
                exit 1
        done
    ) > "$IT_DIR/client$i.out" 2>&1 &
    pids+=($!)
done
bad=0
for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
[ "$bad" = 0 ] || {
    cat "$IT_DIR"/client*.out >&2
    fail "d: $bad of 8 clients saw a transfer fail"
}
it_log "ok: d: 80 concurrent transfers committed"
sum_a=$(my_sql "$XAC_TEST_MYSQL_DB" "SELECT SUM(balance) FROM $T")
sum_b=$(pg_sql "SELECT SUM(balance) FROM $T")
assert_eq "720 880" "$sum_a $sum_b" "d: sums on bank_a and bank_b"
assert_eq 1600 $((sum_a + sum_b)) "d: total balance"
assert_eq "90 90" "$(my_sql "$XAC_TEST_MYSQL_DB" "SELECT MIN(balance), MAX(balance) FROM $T" | tr '\t' ' ')" \
    "d: every bank_a account moved 10 (min max)"
assert_eq "110|110" "$(pg_sql "SELECT MIN(balance), MAX(balance) FROM $T")" "d: every bank_b account got 10 (min|max)"
assert_no_prepared "d: after the concurrent transfers"
stop_xacd

# ------------------------------------------------------- e) corrupt journal
it_log "---- e) a corrupt record in the journal; --salvage-journal"
make_accounts $T 100
my_sql "$XAC_TEST_MYSQL_DB" "INSERT INTO $T VALUES (2, 100)"
rm -rf "$IT_JOURNAL"
start_xacd
transfer 1
expect_committed "e: first transfer"
transfer 1
expect_committed "e: second transfer"
stop_xacd
# A decided transaction whose branches are still prepared: the journal knows it.
start_xacd XAC_CRASH_AT=after-decision
transfer 10
assert_eq 3 "$XAC_RC" "e: xac exit code when xacd dies after the decision"
wait_xacd_crash
wait_mysql_sessions_gone
g4=$(last_gtrid)
assert_eq "1 1" "$(count_branches "$g4")" "e: prepared branches of the decided $g4"
# An undecided branch of this node from an earlier run, made by hand: its
# COMMIT could have been in the damaged bytes for all xacd can tell.
g6="$IT_NODE.1.1"
my_sql "$XAC_TEST_MYSQL_DB" "XA START '$g6', 'bank_a', 2019648305;
    UPDATE $T SET balance = balance - 50 WHERE id = 2;
    XA END '$g6', 'bank_a', 2019648305; XA PREPARE '$g6', 'bank_a', 2019648305"
assert_eq "1 0" "$(count_branches "$g6")" "e: the hand-made undecided branch"
seg=$(find "$IT_JOURNAL" -maxdepth 1 -name '*.xacj' | sort | head -1)
[ -n "$seg" ] || fail "e: no segment file in $IT_JOURNAL"
# Flip a byte inside the first record (the segment header is 20 bytes); the
# records after it make this corruption, not a torn tail.
printf '\xff' | dd of="$seg" bs=1 seek=30 conv=notrunc status=none
st=0
timeout 60 "$XACD_BIN" -c "$IT_CONF" > "$IT_DIR/refused.log" 2>&1 || st=$?
cat "$IT_DIR/refused.log" >> "$IT_LOG"
assert_eq 1 "$st" "e: xacd's exit status on a corrupt journal"
assert_contains "$(cat "$IT_DIR/refused.log")" "is corrupt at byte offset" "e: the error names the corruption"
assert_contains "$(cat "$IT_DIR/refused.log")" "--salvage-journal" "e: the error names --salvage-journal"
"$XACD_BIN" --help | grep -- "--salvage-journal" > /dev/null || fail "e: --help does not describe --salvage-journal"
"$XACD_BIN" --help | grep "LOST" > /dev/null || fail "e: --help does not say that decisions are lost"
it_log "ok: e: --help describes --salvage-journal and its cost"

# start_xacd cannot pass options: a wrapper adds it (exec keeps the pid).
printf '#!/bin/sh\nexec "%s" --salvage-journal "$@"\n' "$XACD_BIN" > "$IT_DIR/xacd-salvage"
chmod +x "$IT_DIR/xacd-salvage"
real_xacd=$XACD_BIN
XACD_BIN=$IT_DIR/xacd-salvage
start_xacd
XACD_BIN=$real_xacd
grep -q "journal salvaged" "$IT_LOG" || fail "e: the log does not say the journal was salvaged"
it_log "ok: e: xacd started with --salvage-journal"
[ -n "$(find "$IT_JOURNAL/damaged" -type f 2> /dev/null)" ] || fail "e: no copy of the damaged segment in $IT_JOURNAL/damaged/"
it_log "ok: e: a copy of the damaged segment is in damaged/"
assert_eq "0 0" "$(count_branches "$g4")" "e: the decided transaction was committed by the salvage start"
assert_eq "88 112" "$(balances)" "e: balances after the salvage start"
assert_eq "1 0" "$(count_branches "$g6")" "e: the undecided branch is left prepared after a salvage start"
grep -q "left prepared because the journal was salvaged" "$IT_LOG" || fail "e: the log does not explain the branch left prepared"
it_log "ok: e: the log explains why"
stop_xacd

start_xacd
assert_no_prepared "e: a plain start after the salvage rolls the undecided branch back"
it_log "ok: e: no prepared branch after the plain start"
assert_eq 100 "$(my_sql "$XAC_TEST_MYSQL_DB" "SELECT balance FROM $T WHERE id = 2")" "e: the undecided branch's change was rolled back"
transfer 2
expect_committed "e: a transfer on the salvaged journal"
assert_eq "86 114" "$(balances)" "e: balances after it"
stop_xacd
it_pass
