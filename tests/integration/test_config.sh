#!/usr/bin/env bash
# xacd --check-config: a good config passes; a typo'd key and a password file
# that others can read are refused with exit 2 and "FILE:LINE: ...".
. "$(dirname "$0")/lib.sh"
it_setup

check() { # CONF: sets CK_RC and CK_OUT
    CK_RC=0
    CK_OUT=$("$XACD_BIN" -c "$1" --check-config 2>&1) || CK_RC=$?
    printf '%s\n' "$CK_OUT" | sed "s/^/[$IT_NAME]   xacd: /"
}

check "$IT_CONF"
assert_eq 0 "$CK_RC" "the standard test config passes --check-config"

it_log "a typo'd key"
bad=$IT_DIR/typo.conf
# pool_size -> pool_sise in the first resource; remember its line.
awk '/pool_size/ && !done { sub(/pool_size/, "pool_sise"); done = 1 } { print }' "$IT_CONF" > "$bad"
line=$(grep -n pool_sise "$bad" | head -1 | cut -d: -f1)
[ -n "$line" ] || fail "could not make the typo'd config"
check "$bad"
assert_eq 2 "$CK_RC" "exit code for a typo'd key"
assert_contains "$CK_OUT" "$bad:$line" "the message names file and line ($bad:$line)"
assert_contains "$CK_OUT" "pool_sise" "the message names the unknown key"
assert_contains "$CK_OUT" "pool_size" "the message suggests pool_size"

it_log "a syntax error"
bad2=$IT_DIR/syntax.conf
{ head -3 "$IT_CONF"; echo 'workers = ;'; tail -n +4 "$IT_CONF"; } > "$bad2"
check "$bad2"
assert_eq 2 "$CK_RC" "exit code for a syntax error"
assert_contains "$CK_OUT" "$bad2:4" "the message names file and line ($bad2:4)"

it_log "a password file readable by others"
chmod 644 "$IT_DIR/pg.password"
check "$IT_CONF"
assert_eq 2 "$CK_RC" "exit code for a password_file with mode 0644"
assert_contains "$CK_OUT" "$IT_DIR/pg.password" "the message names the password file"
pline=$(grep -n "pg.password" "$IT_CONF" | head -1 | cut -d: -f1)
assert_contains "$CK_OUT" "$IT_CONF:$pline" "the message names the config line ($IT_CONF:$pline)"
chmod 600 "$IT_DIR/pg.password"
check "$IT_CONF"
assert_eq 0 "$CK_RC" "mode 0600 is accepted again"

it_log "xacd refuses to start with the bad config, too"
rc=0
timeout 30 "$XACD_BIN" -c "$bad" > "$IT_DIR/start.out" 2>&1 || rc=$?
assert_eq 2 "$rc" "xacd -c with a typo'd key exits 2"
it_pass
