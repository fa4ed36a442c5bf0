#!/usr/bin/env bash
# A two-minute tour of xac on Debian 12: installs what is missing, builds,
# starts throwaway MariaDB and PostgreSQL servers and xacd, then moves money
# between the two databases with the xac command-line client: one transfer
# that commits in both, then two that PostgreSQL refuses (at a statement, and
# at PREPARE), which change neither. Everything it starts is stopped at the end.
#
#   scripts/demo.sh [--keep]     (--keep: keep the temp dir with the logs)
set -euo pipefail

keep=0
case ${1:-} in
--keep) keep=1 ;;
"") ;;
-h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
*)
    echo "demo.sh: unknown argument $1 (try --help)" >&2
    exit 2
    ;;
esac

. "$(dirname "$0")/setup.sh"
cd "$XAC_ROOT"
xac_install_deps
xac_build xacd xac_cli xacctl

dir=$(mktemp -d /tmp/xac-demo.XXXXXX)
xacd_pid=""
cleanup() {
    local rc=$?
    set +e
    if [ -n "$xacd_pid" ]; then
        kill -TERM "$xacd_pid" 2> /dev/null
        wait "$xacd_pid" 2> /dev/null
    fi
    "$XAC_ROOT/tests/fixtures/db.sh" stop "$dir" > /dev/null 2>&1
    if [ "$keep" = 1 ]; then
        echo "==> kept $dir (xacd.log is the coordinator's log)"
    else
        rm -rf "$dir"
    fi
    [ "$rc" = 0 ] && echo "==> demo finished; everything it started is stopped"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -t 1 ]; then
    step() { printf '\n\033[1m### %s\033[0m\n' "$*"; }
else
    step() { printf '\n### %s\n' "$*"; }
fi
show() { printf '$ %s\n' "$*"; }

step "1. Start throwaway MariaDB and PostgreSQL servers in $dir"
"$XAC_ROOT/tests/fixtures/db.sh" start "$dir"
. "$dir/env.sh"
mysql_q() {
    mariadb --no-defaults --socket="$XAC_TEST_MYSQL_SOCKET" -u"$XAC_TEST_MYSQL_USER" \
        -p"$XAC_TEST_MYSQL_PASSWORD" --table "$XAC_TEST_MYSQL_DB" -e "$1"
}
pg_q() {
    PGPASSWORD=$XAC_TEST_PG_PASSWORD PGOPTIONS='-c client_min_messages=warning' \
        psql -X -q -v ON_ERROR_STOP=1 -h "$XAC_TEST_PG_HOST" \
        -p "$XAC_TEST_PG_PORT" -U "$XAC_TEST_PG_USER" -d "$XAC_TEST_PG_DB" -c "$1"
}

step "2. Start xacd with a config made from conf/demo.conf"
umask 077
printf '%s\n' "$XAC_TEST_MYSQL_PASSWORD" > "$dir/mysql.password"
printf '%s\n' "$XAC_TEST_PG_PASSWORD" > "$dir/pg.password"
token="demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$token" > "$dir/demo.token"
umask 022
sed -e "s|@DIR@|$dir|g" -e "s|@MYSQL_SOCKET@|$XAC_TEST_MYSQL_SOCKET|g" \
    -e "s|@MYSQL_USER@|$XAC_TEST_MYSQL_USER|g" -e "s|@MYSQL_DB@|$XAC_TEST_MYSQL_DB|g" \
    -e "s|@PG_HOST@|$XAC_TEST_PG_HOST|g" -e "s|@PG_PORT@|$XAC_TEST_PG_PORT|g" \
    -e "s|@PG_USER@|$XAC_TEST_PG_USER|g" -e "s|@PG_DB@|$XAC_TEST_PG_DB|g" \
    "$XAC_ROOT/conf/demo.conf" > "$dir/xacd.conf"
echo "resources: bank_a = MariaDB database $XAC_TEST_MYSQL_DB, bank_b = PostgreSQL database $XAC_TEST_PG_DB"
"$XAC_ROOT/build/coordinator/xacd" -c "$dir/xacd.conf" > "$dir/xacd.out" 2>&1 &
xacd_pid=$!
for _ in $(seq 1 300); do
    grep -q 'xacd ready' "$dir/xacd.log" 2> /dev/null && break
    kill -0 "$xacd_pid" 2> /dev/null || { cat "$dir/xacd.out" "$dir/xacd.log" 2> /dev/null >&2; exit 1; }
    sleep 0.1
done
grep -q 'xacd ready' "$dir/xacd.log" || { echo "xacd did not become ready in 30 s" >&2; exit 1; }
grep 'xacd ready' "$dir/xacd.log" | tail -1 | sed 's/^.*\(xacd ready\)/\1/'

xac() { "$XAC_ROOT/build/client/xac" "$@"; }
export XAC_ADDR="unix:$dir/xacd.sock" XAC_CLIENT=demo XAC_TOKEN=$token

step "3. One account with balance 100 in each database"
mysql_q "DROP TABLE IF EXISTS accounts;
    CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(40) NOT NULL,
                           balance BIGINT NOT NULL) ENGINE=InnoDB;
    INSERT INTO accounts VALUES (1, 'alice', 100);"
pg_q "DROP TABLE IF EXISTS transfers; DROP TABLE IF EXISTS accounts;
    CREATE TABLE accounts (id INT PRIMARY KEY, owner TEXT NOT NULL,
                           balance BIGINT NOT NULL CHECK (balance >= 0));
    INSERT INTO accounts VALUES (1, 'bob', 100);
    CREATE TABLE transfers (id INT PRIMARY KEY, account INT NOT NULL
                            REFERENCES accounts (id) DEFERRABLE INITIALLY DEFERRED);"
balances() {
    echo "MariaDB (bank_a):"
    mysql_q "SELECT id, owner, balance FROM accounts"
    echo "PostgreSQL (bank_b):"
    pg_q "SELECT id, owner, balance FROM accounts"
}
balances

step "4. Move 30 from alice (MariaDB) to bob (PostgreSQL) in one global transaction"
show "xac 'bank_a: UPDATE accounts SET balance = balance - ? WHERE id = ?' -i 30 -i 1 \\"
show "    'bank_b: UPDATE accounts SET balance = balance + ? WHERE id = ?' -i 30 -i 1"
xac 'bank_a: UPDATE accounts SET balance = balance - ? WHERE id = ?' -i 30 -i 1 \
    'bank_b: UPDATE accounts SET balance = balance + ? WHERE id = ?' -i 30 -i 1
echo "Both branches were prepared, the decision was forced to the journal, then both committed:"
balances

step "5. Move 500 from bob (PostgreSQL) to alice (MariaDB): bob has only 130"
echo "MariaDB accepts its half (+500); PostgreSQL's CHECK (balance >= 0) refuses the other half,"
echo "so xacd rolls back both."
show "xac 'bank_a: UPDATE accounts SET balance = balance + ? WHERE id = ?' -i 500 -i 1 \\"
show "    'bank_b: UPDATE accounts SET balance = balance - ? WHERE id = ?' -i 500 -i 1"
rc=0
xac 'bank_a: UPDATE accounts SET balance = balance + ? WHERE id = ?' -i 500 -i 1 \
    'bank_b: UPDATE accounts SET balance = balance - ? WHERE id = ?' -i 500 -i 1 || rc=$?
echo "(xac exit status $rc: 1 means the transaction was rolled back)"
echo "Neither database changed:"
balances
rc1=$rc

step "6. A refusal at PREPARE: every statement succeeds, then PostgreSQL votes no"
echo "PostgreSQL's table 'transfers' has a DEFERRABLE INITIALLY DEFERRED foreign key to accounts;"
echo "it is checked only when the branch is prepared. The transfer below logs it against"
echo "account 2, which does not exist, so bank_b votes no in phase one and MariaDB is rolled back."
show "xac 'bank_a: UPDATE accounts SET balance = balance - ? WHERE id = ?' -i 10 -i 1 \\"
show "    'bank_b: UPDATE accounts SET balance = balance + ? WHERE id = ?' -i 10 -i 1 \\"
show "    'bank_b: INSERT INTO transfers (id, account) VALUES (?, ?)' -i 1 -i 2"
rc=0
xac 'bank_a: UPDATE accounts SET balance = balance - ? WHERE id = ?' -i 10 -i 1 \
    'bank_b: UPDATE accounts SET balance = balance + ? WHERE id = ?' -i 10 -i 1 \
    'bank_b: INSERT INTO transfers (id, account) VALUES (?, ?)' -i 1 -i 2 || rc=$?
echo "(xac exit status $rc)"
echo "Neither database changed:"
balances

a=$(mariadb --no-defaults --socket="$XAC_TEST_MYSQL_SOCKET" -u"$XAC_TEST_MYSQL_USER" \
    -p"$XAC_TEST_MYSQL_PASSWORD" -N -B "$XAC_TEST_MYSQL_DB" -e "SELECT balance FROM accounts WHERE id = 1")
b=$(PGPASSWORD=$XAC_TEST_PG_PASSWORD psql -X -q -t -A -h "$XAC_TEST_PG_HOST" -p "$XAC_TEST_PG_PORT" \
    -U "$XAC_TEST_PG_USER" -d "$XAC_TEST_PG_DB" -c "SELECT balance FROM accounts WHERE id = 1")
if [ "$rc1" = 1 ] && [ "$rc" = 1 ] && [ "$a" = 70 ] && [ "$b" = 130 ]; then
    step "Result: the first transfer committed in both databases, the other two in neither (70 + 130 = 200)"
else
    step "Unexpected result: xac exit $rc1 and $rc (expected 1 and 1), MariaDB balance $a (expected 70), PostgreSQL balance $b (expected 130)"
    exit 1
fi
