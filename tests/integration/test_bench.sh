#!/usr/bin/env bash
# xac-bench's smoke run (the full benchmark is bench/run_bench.sh, not a
# test): xacd with resources my, pg and my2, then xac-bench with the modes
# direct, xac and local on every workload at 2 clients for half a second
# each. It checks that the run exits 0 (no failed transaction, every money
# check held), that every mode committed on every workload, that the CSV has
# one row per point with the documented columns, the ratio table, the PNG
# when gnuplot is there; that --rate paces the clients (no more commits than
# the schedule allows); and that bad options are refused with status 2.
# Nothing about speed is asserted. Skipped (77) without the databases.
if [ -z "${XAC_TEST_MYSQL_HOST:-}" ] || [ -z "${XAC_TEST_PG_HOST:-}" ]; then
    echo "[test_bench] skipped: no XAC_TEST_* database variables (source tests/fixtures/db.sh's env.sh)"
    exit 77
fi
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck disable=SC2034 # read by lib.sh's it_write_config
IT_LOG_LEVEL=info
it_setup
BENCH=$XAC_BUILD_DIR/bench/xac-bench
[ -x "$BENCH" ] || fail "$BENCH is missing: build the xac_bench target"
it_drop_tables() {
    my_sql "$XAC_TEST_MYSQL_DB" "DROP TABLE IF EXISTS bench_accounts" || true
    my_sql "$XAC_TEST_MYSQL_DB2" "DROP TABLE IF EXISTS bench_accounts" || true
    pg_sql "DROP TABLE IF EXISTS bench_accounts" > /dev/null || true
}

# The resources xac-bench's xac mode expects, on the databases its direct and
# local modes use: lib.sh's bank_a, bank_b and bank_d under their names.
it_write_config "$IT_CONF" bank_a bank_b bank_d
sed -i -e 's/name = "bank_a"/name = "my"/' -e 's/name = "bank_b"/name = "pg"/' \
    -e 's/name = "bank_d"/name = "my2"/' "$IT_CONF"
start_xacd

# bench ARGS...: runs xac-bench; BENCH_RC, output in $IT_DIR/bench.out.
bench() {
    BENCH_RC=0
    "$BENCH" "$@" > "$IT_DIR/bench.out" 2>&1 || BENCH_RC=$?
    sed "s/^/[$IT_NAME]   /" "$IT_DIR/bench.out"
}

it_log "usage errors exit 2 with a message"
expect_usage() { # WHAT NEEDLE ARGS...
    local what=$1 needle=$2
    shift 2
    bench "$@"
    assert_eq 2 "$BENCH_RC" "$what: exit status"
    assert_contains "$(cat "$IT_DIR/bench.out")" "$needle" "$what: the message"
}
expect_usage "unknown option" "unknown option --bogus" --bogus 1
expect_usage "unknown mode" 'unknown mode "xa"' --modes xa,direct
expect_usage "unknown workload" 'unknown workload "transfer9"' --workloads transfer9
expect_usage "null2 in mode direct" "null2 runs only in mode xac" --modes direct --workloads null2
expect_usage "rate 0" '--rate "0"' --rate 0 --workloads one
expect_usage "plot name" "ending in .png" --plot out.svg --workloads one
expect_usage "missing value" "missing value" --clients

csv=$IT_DIR/bench.csv
png=$IT_DIR/bench.png
plot=()
if command -v gnuplot > /dev/null; then plot=(--plot "$png"); else it_log "no gnuplot: --plot not checked"; fi
it_log "all modes, all workloads, 2 clients"
bench --modes direct,xac,local --workloads transfer2,one,transfer3,readmostly --clients 2 \
    --seconds 0.5 --warmup 0.1 --accounts 1000 --csv "$csv" "${plot[@]}"
assert_eq 0 "$BENCH_RC" "xac-bench exit status"
out=$(cat "$IT_DIR/bench.out")
assert_eq "mode,workload,clients,seconds,tx_per_s,p50_ms,p95_ms,p99_ms,p999_ms,committed,rollbacks,errors,rate" \
    "$(head -1 "$csv")" "CSV header"
assert_eq 12 "$(awk 'NR > 1' "$csv" | wc -l)" "CSV rows (4 workloads x 3 modes)"
for w in transfer2 one transfer3 readmostly; do
    for m in direct xac local; do
        row=$(awk -F, -v m=$m -v w=$w '$1 == m && $2 == w' "$csv")
        [ -n "$row" ] || fail "no CSV row for $m/$w"
        IFS=, read -r -a f <<< "$row"
        [ "${#f[@]}" = 13 ] || fail "$m/$w: ${#f[@]} columns: $row"
        [ "${f[2]}" = 2 ] || fail "$m/$w: clients ${f[2]}, expected 2"
        [ "${f[9]}" -gt 0 ] || fail "$m/$w: nothing committed: $row"
        [ "${f[11]}" = 0 ] || fail "$m/$w: ${f[11]} errors: $row"
        [ "${f[12]}" = 0 ] || fail "$m/$w: rate ${f[12]} in a closed-loop run"
        line=$(printf '%s\n' "$out" | awk -v m=$m -v w=$w '$1 == m && $2 == w')
        [ "$(printf '%s\n' "$line" | awk '{print $NF}')" = ok ] || fail "$m/$w: the check is not ok: $line"
        it_log "ok: $m/$w committed ${f[9]}, 0 errors, check ok"
    done
    assert_contains "$out" "ratios, workload $w" "the ratio table of $w"
done
if [ ${#plot[@]} -gt 0 ]; then
    [ -s "$png" ] || fail "no PNG at $png"
    assert_eq "89504e47" "$(head -c 4 "$png" | od -An -tx1 | tr -d ' \n')" "the plot's PNG signature"
fi

it_log "open loop: --rate 40 at 2 clients for 1 s, no warm-up"
bench --modes xac --workloads one --clients 2 --rate 40 --seconds 1 --warmup 0 --accounts 1000 \
    --csv "$csv"
assert_eq 0 "$BENCH_RC" "paced xac-bench exit status"
IFS=, read -r -a f <<< "$(awk 'NR == 2' "$csv")"
assert_eq 40 "${f[12]}" "the rate column"
[ "${f[9]}" -gt 0 ] || fail "paced: nothing committed"
# The schedule starts 40 transactions in the second (at 0, 1/40, ...; one
# more per client may fall on its end): a client that ignored it would
# commit hundreds.
[ "${f[9]}" -le 42 ] || fail "paced: ${f[9]} commits in 1 s at --rate 40: the clients are not paced"
it_log "ok: paced run committed ${f[9]} (at most 42 allowed by the schedule)"

it_log "a client count given twice: xac against local pooled over its pairs"
bench --modes local,xac --workloads one --clients 1,2,1 --seconds 0.4 --warmup 0 --accounts 1000 \
    --csv "$csv"
assert_eq 0 "$BENCH_RC" "repeated-count xac-bench exit status"
out=$(cat "$IT_DIR/bench.out")
line=$(printf '%s\n' "$out" | grep '^1 clients, 2 pairs: xac/local pooled ' || true)
[ -n "$line" ] || fail "no pooled line for 1 client: $out"
if printf '%s\n' "$out" | grep -q '^2 clients,'; then fail "a pooled line for a count given once: $out"; fi
# The pooled ratio is all of xac's commits over all its time against
# local's, from the CSV's own rows.
want=$(awk -F, '$3 == 1 && $1 == "xac" { xc += $10; xs += $4 } $3 == 1 && $1 == "local" { lc += $10; ls += $4 }
    END { printf "%.3f", (xc / xs) / (lc / ls) }' "$csv")
got=$(sed 's/.*pooled \([0-9.]*\),.*/\1/' <<< "$line")
awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; exit !(d < 0.01 && d > -0.01) }' ||
    fail "pooled $got, the CSV gives $want: $line"
it_log "ok: $line (CSV: $want)"

stop_xacd
it_pass
