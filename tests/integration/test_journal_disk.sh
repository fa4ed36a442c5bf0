#!/usr/bin/env bash
# Disk use of the decision journal stays bounded (issue 3): 300,000
# transactions from 64 threads on 1 MiB segments, each ended at once except 3
# pinned ones that are never ended and must be carried forward. prog_journal_load
# disk samples the directory during the load and fails when, at the end, it
# holds more than 4 segments + 64 KiB, when it peaked above 6 segments + 64 KiB,
# or when a pinned commit is lost before or after a reopen. Needs no database.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

it_setup_nodb prog_journal_load

SEG=$((1024 * 1024))
COUNT=300000

it_log "$COUNT transactions, 64 threads, segment size $SEG, 3 pins, dir $IT_DIR"
st=0
"$IT_PROG" disk --dir "$IT_DIR/journal" --threads 64 --count "$COUNT" --segment-size "$SEG" --pin 3 \
    > "$IT_DIR/out" 2> "$IT_DIR/log" || st=$?
sed -n "s/.*INFO: disk: /[$IT_NAME]   progress: /p" "$IT_DIR/log"
sed "s/^/[$IT_NAME]   /" "$IT_DIR/out"
it_log "journal directory after the run:"
find "$IT_DIR/journal" -type f -printf "[$IT_NAME]   %10s %P\n" | sort -k3
if [ "$st" != 0 ]; then
    grep -v 'INFO: disk: ' "$IT_DIR/log" | tail -20 >&2
    fail "prog_journal_load disk exited with status $st: $(sed -n 's/.*disk FAILED: //p' "$IT_DIR/log")"
fi
grep -q '^disk ok$' "$IT_DIR/out" || fail "prog_journal_load disk exited 0 without 'disk ok'"
it_log "ok: directory bounded and the 3 pinned commits kept"
it_pass
