#!/usr/bin/env bash
# The mysql driver's saved round trips survive a MariaDB restart: connections
# that hold prepared statements in the driver's cache, and a branch whose XA
# END was still to be sent, meet a restarted server. prog_mysql_restart checks
# that the held branch fails at drv_end (XAER_RMFAIL, nothing committed), that
# the pool's replacement connection prepares its statements afresh and
# commits, and that the table holds exactly the committed work. A database
# this test stopped is always started again on exit: other tests share it.
. "$(dirname "$0")/lib.sh"
it_need_local_servers "restarts MariaDB"
it_setup
T=it_myrestart
it_drop_tables() { my_sql "$XAC_TEST_MYSQL_DB" "DROP TABLE IF EXISTS $T"; }
DB_SH=$XAC_SOURCE_DIR/tests/fixtures/db.sh
PROG=$XAC_BUILD_DIR/tests/prog_mysql_restart
[ -n "${XAC_TEST_DIR:-}" ] || fail "XAC_TEST_DIR is not set: source the env.sh that tests/fixtures/db.sh wrote"
[ -x "$PROG" ] || fail "$PROG is missing: build the project first"

# The restart the program runs between its two halves; MariaDB may find its
# port still busy for a moment, so a few tries to start.
cat > "$IT_DIR/restart.sh" << SH
bash "$DB_SH" stop-mysql "$XAC_TEST_DIR" || exit 1
touch "$IT_DIR/mysql-down"
for i in 1 2 3 4 5; do
    if bash "$DB_SH" start-mysql "$XAC_TEST_DIR" > "$IT_DIR/db-start.log" 2>&1; then
        rm -f "$IT_DIR/mysql-down"
        exit 0
    fi
    sleep 1
done
exit 1
SH

restart_if_down() {
    if [ -e "$IT_DIR/mysql-down" ]; then
        bash "$DB_SH" start-mysql "$XAC_TEST_DIR" > /dev/null 2>&1 ||
            echo "[$IT_NAME] could not restart MariaDB in $XAC_TEST_DIR" >&2
    fi
}
# shellcheck disable=SC2154 # it_rc is set inside the trap itself
trap 'it_rc=$?; set +e; restart_if_down; (exit $it_rc); it_cleanup' EXIT

my_sql "$XAC_TEST_MYSQL_DB" "DROP TABLE IF EXISTS $T;
    CREATE TABLE $T (id INT PRIMARY KEY, v BIGINT NOT NULL) ENGINE=InnoDB;
    INSERT INTO $T VALUES (1, 0), (2, 0)"

set +e
out=$("$PROG" "$T" "bash $IT_DIR/restart.sh" 2>&1)
rc=$?
set -e
echo "$out" | sed "s/^/[$IT_NAME]   /"
[ "$rc" = 0 ] || fail "prog_mysql_restart exited $rc"
n_ok=$(echo "$out" | grep -c '^OK ')
[ "$n_ok" = 10 ] || fail "expected 10 passed checks, got $n_ok"
# The server's own view, from outside the driver.
v=$(my_sql "$XAC_TEST_MYSQL_DB" "SELECT GROUP_CONCAT(v ORDER BY id) FROM $T")
[ "$v" = "7,0" ] || fail "balances after the restart: expected 7,0, got $v"
it_log "ok: restart under cached statements and a deferred XA END"
it_pass
