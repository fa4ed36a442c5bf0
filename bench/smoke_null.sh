#!/usr/bin/env bash
# ctest bench.xac_null_smoke: needs no database. Checks that xacd refuses a
# null resource unless testing.allow_null_driver = true (naming the file and
# line, and how to allow it), then runs bench/run_null.sh briefly (0.5 s at
# 1 and 4 clients, then its offered-load point at 200/s from 4 clients) and
# checks that every point committed transactions with no error, that the
# paced point did not run more than its schedule allows, and that xacd itself
# counted at least as many commits as xac-bench measured. Nothing about speed
# is asserted.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${XAC_BUILD_DIR:?XAC_BUILD_DIR must name the build directory (ctest sets it)}
xacd=$build/coordinator/xacd
tmp=$(mktemp -d /tmp/xac-bench-smoke.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "[bench.xac_null_smoke] FAIL: $*" >&2
    exit 1
}
say() { echo "[bench.xac_null_smoke] $*"; }

# A config with one null resource; $1 is the testing group ("" for none).
write_conf() {
    cat > "$tmp/check.conf" <<CONF
node_id = "smoke";
listen = { unix = "$tmp/check.sock"; };
journal_dir = "$tmp/check-journal";
resources = (
  { name = "null_a";
    driver = "null"; }
);
clients = ( { name = "bench"; token = "t"; } );
$1
CONF
}

for testing in "" "testing = { allow_null_driver = false; };"; do
    write_conf "$testing"
    if "$xacd" --check-config -c "$tmp/check.conf" > "$tmp/check.out" 2>&1; then
        fail "xacd accepted a null resource with '${testing:-no testing group}'"
    fi
    grep -q "check.conf:6: resource null_a: driver \"null\"" "$tmp/check.out" ||
        fail "the refusal does not name check.conf:6 and the resource: $(cat "$tmp/check.out")"
    if ! grep -q 'benchmarks and tests only' "$tmp/check.out" ||
        ! grep -q 'allow_null_driver = true' "$tmp/check.out"; then
        fail "the refusal does not say what the driver is for and how to allow it: $(cat "$tmp/check.out")"
    fi
done
write_conf "testing = { allow_null_driver = true; };"
"$xacd" --check-config -c "$tmp/check.conf" > "$tmp/check.out" 2>&1 ||
    fail "xacd refused a null resource with allow_null_driver = true: $(cat "$tmp/check.out")"
say "a null resource is refused without testing.allow_null_driver = true, accepted with it"

csv=$tmp/null.csv
rc=0
bash "$here/run_null.sh" --build "$build" --dir "$tmp/run" --workers 4 --any-fs \
    --rate 200 --rate-clients 4 -- \
    --seconds 0.5 --warmup 0.2 --clients 1,4 --csv "$csv" > "$tmp/run.out" 2>&1 || rc=$?
cat "$tmp/run.out"
[ "$rc" = 0 ] || fail "run_null.sh exited with status $rc"
[ -s "$csv" ] || fail "xac-bench wrote no CSV"
head -1 "$csv" | grep '^mode,workload,clients,seconds,tx_per_s,p50_ms,p95_ms,p99_ms,p999_ms,committed,rollbacks,errors,rate$' > /dev/null ||
    fail "the CSV has no header row"
rows=$(awk -F, 'NR > 1' "$csv" | wc -l)
[ "$rows" = 2 ] || fail "expected 2 CSV rows (1 and 4 clients), got $rows"
measured=0
while IFS=, read -r mode wl clients _ _ _ _ _ _ tx _ errors _; do
    [ "$mode,$wl" = "xac,null2" ] || fail "unexpected row: $mode,$wl"
    [ "$tx" -gt 0 ] || fail "$clients client(s): no transaction committed"
    [ "$errors" = 0 ] || fail "$clients client(s): $errors failed transactions"
    measured=$((measured + tx))
    say "$clients client(s): $tx transactions, 0 errors"
done < <(awk -F, 'NR > 1' "$csv")
# The offered-load point: its own CSV, 4 paced clients at 200/s in total.
rcsv=${csv%.csv}-rate.csv
[ -s "$rcsv" ] || fail "the offered-load point wrote no CSV ($rcsv)"
IFS=, read -r mode wl clients _ _ _ _ _ _ tx _ errors rate < <(awk -F, 'NR == 2' "$rcsv")
[ "$mode,$wl,$clients,$rate" = "xac,null2,4,200" ] ||
    fail "the offered-load row is not xac,null2 at 4 clients, rate 200: $(cat "$rcsv")"
[ "$tx" -gt 0 ] || fail "offered load: no transaction committed"
[ "$errors" = 0 ] || fail "offered load: $errors failed transactions"
# 200/s for 0.5 s after a 0.2 s warm-up: the schedule starts at most
# 0.7 x 200 + 4 transactions before the end (late ones of the warm-up
# included); closed loop would run thousands.
[ "$tx" -le 144 ] || fail "offered load: $tx transactions in 0.5 s at --rate 200: not paced"
measured=$((measured + tx))
say "offered load (200/s, 4 clients): $tx transactions, 0 errors"
committed=$(awk '$1 == "committed" { print $2 }' "$tmp/run.out")
[ -n "$committed" ] || fail "run_null.sh did not print xacd's committed count"
[ "$committed" -ge "$measured" ] ||
    fail "xacd counted $committed commits, fewer than the $measured xac-bench measured"
say "xacd counted $committed commits (xac-bench measured $measured, warm-up excluded)"
say "PASS"
