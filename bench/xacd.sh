# shellcheck shell=bash
# Sourced by bench/run_bench.sh and bench/run_null.sh: starting xacd for a
# benchmark and stopping it, with the same checks in both. Each function
# prints what went wrong (with xacd's log) and returns 1; the caller exits.

# bench_xacd_start XACD CONF SOCK LOG: starts xacd in the background, sets
# xacd_pid, and waits (30 s at most) for its socket. The log level of the
# benchmarks' configs is warn, so "xacd ready" (info) is not logged: the
# socket is the sign.
bench_xacd_start() {
    local xacd=$1 conf=$2 sock=$3 log=$4
    "$xacd" -c "$conf" 2>> "$log" &
    xacd_pid=$!
    local _
    for _ in $(seq 1 300); do
        [ -S "$sock" ] && return 0
        if ! kill -0 "$xacd_pid" 2> /dev/null; then
            echo "xacd exited at start; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "xacd did not open $sock within 30 s" >&2
    return 1
}

# bench_xacd_stop LOG: SIGTERM, then xacd's exit status must be 0.
bench_xacd_stop() {
    local log=$1 st=0
    kill -TERM "$xacd_pid"
    wait "$xacd_pid" || st=$?
    xacd_pid=""
    if [ "$st" != 0 ]; then
        echo "xacd exited with status $st after SIGTERM; the end of its log:" >&2
        tail -40 "$log" >&2
        return 1
    fi
}
