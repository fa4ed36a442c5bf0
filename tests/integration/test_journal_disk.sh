#!/usr/bin/env bash
# Disk use of the decision journal stays bounded (issue 3): 300,000
# transactions from 64 threads on 1 MiB segments, each ended at once except 3
# pinned ones that are never ended and must be carried forward. prog_journal_load
# disk samples the directory during the load and fails when, at the end, it
# holds more than 4 segments + 64 KiB, when it peaked above 6 segments + 64 KiB,
# or when a pinned commit is lost before or after a reopen. Needs no database.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

[ -n "${XAC_BUILD_DIR:-}" ] || fail "XAC_BUILD_DIR is not set (run through ctest or scripts/test.sh)"
PROG=$XAC_BUILD_DIR/tests/prog_journal_load
[ -x "$PROG" ] || fail "$PROG is missing: build the project first (cmake --build $XAC_BUILD_DIR)"

SEG=$((1024 * 1024))
COUNT=300000
TMP=$(mktemp -d "/tmp/xac-it-$IT_NAME.XXXXXX")
DONE=0

cleanup() {
    local rc=$?
    set +e
    if [ -z "${XAC_KEEP_TMP:-}" ]; then
        rm -rf "$TMP"
    else
        echo "[$IT_NAME] kept $TMP" >&2
    fi
    [ "$DONE" = 1 ] || [ "$rc" != 0 ] || rc=1
    [ "$rc" != 0 ] || echo "[$IT_NAME] PASS"
    exit "$rc"
}
trap cleanup EXIT

it_log "$COUNT transactions, 64 threads, segment size $SEG, 3 pins, dir $TMP"
st=0
"$PROG" disk --dir "$TMP/journal" --threads 64 --count "$COUNT" --segment-size "$SEG" --pin 3 \
    > "$TMP/out" 2> "$TMP/log" || st=$?
sed -n "s/.*INFO: disk: /[$IT_NAME]   progress: /p" "$TMP/log"
sed "s/^/[$IT_NAME]   /" "$TMP/out"
it_log "journal directory after the run:"
find "$TMP/journal" -type f -printf "[$IT_NAME]   %10s %P\n" | sort -k3
if [ "$st" != 0 ]; then
    grep -v 'INFO: disk: ' "$TMP/log" | tail -20 >&2
    fail "prog_journal_load disk exited with status $st: $(sed -n 's/.*disk FAILED: //p' "$TMP/log")"
fi
grep -q '^disk ok$' "$TMP/out" || fail "prog_journal_load disk exited 0 without 'disk ok'"
it_log "ok: directory bounded and the 3 pinned commits kept"
DONE=1
