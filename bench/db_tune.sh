#!/usr/bin/env bash
# The benchmark's databases: tests/fixtures/db.sh's throwaway MariaDB and
# PostgreSQL, started with XAC_DB_TUNED=1 (the settings of a production
# server, commit path durable) instead of the tests' small defaults, and the
# settings that matter for a benchmark as the running servers report them,
# for the report that goes with the figures.
#
#   db_tune.sh start DIR     start tuned servers (db.sh start), then show
#   db_tune.sh restart DIR   stop, start tuned, show (a DIR started untuned)
#   db_tune.sh show DIR      print the settings of the running servers
#   db_tune.sh stop DIR      db.sh stop
#
# Ports as for db.sh (XAC_TEST_MYSQL_PORT, XAC_TEST_PG_PORT, XAC_TEST_TDS_PORT).
set -euo pipefail

die() { echo "db_tune.sh: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: db_tune.sh start|restart|show|stop DIR"
cmd=$1
dir=$2
DB_SH=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/fixtures" && pwd)/db.sh

show() {
    [ -f "$dir/env.sh" ] || die "no $dir/env.sh: start the servers first"
    # shellcheck disable=SC1091 # written by db.sh
    . "$dir/env.sh"
    echo "MariaDB ($(mariadb --no-defaults --socket="$XAC_TEST_MYSQL_SOCKET" -uroot -N -e 'SELECT VERSION()')):"
    mariadb --no-defaults --socket="$XAC_TEST_MYSQL_SOCKET" -uroot -N -e "SHOW GLOBAL VARIABLES WHERE
        Variable_name IN ('innodb_buffer_pool_size', 'innodb_flush_log_at_trx_commit', 'sync_binlog',
        'log_bin', 'binlog_format', 'innodb_log_file_size', 'innodb_log_buffer_size',
        'innodb_flush_method', 'innodb_doublewrite', 'max_connections', 'thread_handling',
        'transaction_isolation', 'tx_isolation')" | awk '{printf "  %-32s %s\n", $1, $2}'
    local pgq="SELECT name, current_setting(name) FROM pg_settings WHERE name IN
        ('shared_buffers', 'fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method',
         'wal_buffers', 'max_wal_size', 'checkpoint_timeout', 'max_connections',
         'max_prepared_transactions', 'default_transaction_isolation') ORDER BY name"
    echo "PostgreSQL ($(PGPASSWORD=$XAC_TEST_PG_PASSWORD psql -h "$XAC_TEST_PG_HOST" -p "$XAC_TEST_PG_PORT" \
        -U "$XAC_TEST_PG_USER" -d "$XAC_TEST_PG_DB" -tAc 'SHOW server_version')):"
    PGPASSWORD=$XAC_TEST_PG_PASSWORD psql -h "$XAC_TEST_PG_HOST" -p "$XAC_TEST_PG_PORT" \
        -U "$XAC_TEST_PG_USER" -d "$XAC_TEST_PG_DB" -tA -F ' ' -c "$pgq" |
        awk '{n = $1; $1 = ""; printf "  %-32s%s\n", n, $0}'
    echo "Storage: $(findmnt -n -o SOURCE,FSTYPE -T "$dir" | tr -s ' ')"
}

case $cmd in
start) XAC_DB_TUNED=1 "$DB_SH" start "$dir"; show ;;
restart) "$DB_SH" stop "$dir"; XAC_DB_TUNED=1 "$DB_SH" start "$dir"; show ;;
show) show ;;
stop) "$DB_SH" stop "$dir" ;;
*) die "unknown command: $cmd" ;;
esac
