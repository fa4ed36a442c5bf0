#!/usr/bin/env bash
# Crash test of the decision journal (issue 3): 100 times, prog_journal_load
# puts 16 to 64 threads of commits on ONE journal directory (64 KiB segments,
# so that history, rotations, carried records and deletions pile up across the
# kills) and is killed: about 70 times with kill -9 after a random 5..150 ms,
# the other times by its own SIGKILL at a named writer step (--crash-step,
# cycling over every step journal.h names). After every kill, `verify` replays
# the journal and checks every ack file so far: each decision acknowledged and
# not ended is committed, and every pending record is whole and one that was
# written. Needs no database. XAC_CRASH_SEED=N repeats a run's choices (kill
# timing still varies); XAC_CRASH_ITERATIONS=N changes the count (default 100);
# XAC_KEEP_TMP=1 keeps the journal and the ack files.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

it_setup_nodb prog_journal_load

ITERATIONS=${XAC_CRASH_ITERATIONS:-100}
SEED=${XAC_CRASH_SEED:-$(((($(date +%s) ^ $$) + RANDOM) % 32768))}
RANDOM=$SEED
SEG=65536
STEP_COUNT=20000 # commits a --crash-step run makes if its step never comes
WATCHDOG_S=60    # a run that outlives this is hung, not slow
STEPS=(batch-written batch-synced segment-created segment-switched carried segment-deleted)

J=$IT_DIR/journal
mkdir "$IT_DIR/acks" "$IT_DIR/logs"
LOAD_PID=""

# The load must be dead before it_cleanup removes its directory.
jc_cleanup() {
    local rc=$?
    set +e
    if [ -n "$LOAD_PID" ]; then
        kill -9 "$LOAD_PID" 2> /dev/null
        { wait "$LOAD_PID"; } 2> /dev/null
    fi
    (exit "$rc")
    it_cleanup
}
trap jc_cleanup EXIT

# Everything someone needs to look into iteration $1's failure.
die_at() {
    local i=$1 msg=$2
    {
        echo "[$IT_NAME] FAIL at iteration $i of $ITERATIONS (seed $SEED): $msg"
        echo "[$IT_NAME] load: ${LOAD_ARGS[*]}"
        echo "---- last 15 lines of the load log"
        tail -15 "$IT_DIR/logs/run$i.log" 2> /dev/null
        if [ -s "$IT_DIR/verify.log" ]; then
            echo "---- verify output"
            cat "$IT_DIR/verify.out" "$IT_DIR/verify.log" 2> /dev/null
        fi
        echo "---- journal directory"
        ls -l "$J" 2> /dev/null
        echo "Reproduce (the same runs, threads and crash steps; kill timing varies):"
        echo "  XAC_CRASH_SEED=$SEED XAC_KEEP_TMP=1 XAC_BUILD_DIR=$XAC_BUILD_DIR bash $0"
    } >&2
    exit 1
}

it_log "seed $SEED, $ITERATIONS iterations, segment size $SEG, dir $IT_DIR"

kills=0
step_runs=0
not_reached=0
declare -A fired missed
acked=0
checked=0 # acked-and-not-ended decisions looked up, summed over every verify

for i in $(seq 1 "$ITERATIONS"); do
    threads=$((16 + RANDOM % 49))
    ack=$IT_DIR/acks/run$(printf '%04d' "$i").acks
    LOAD_ARGS=(load --dir "$J" --run "$i" --threads "$threads" --segment-size "$SEG"
        --end-percent 90 --pin 2)
    step=""
    # Three iterations in ten crash at a step, the others are killed from here.
    if [ $((i % 10)) = 3 ] || [ $((i % 10)) = 6 ] || [ $((i % 10)) = 9 ]; then
        step=${STEPS[$((step_runs % ${#STEPS[@]}))]}
        case $step in
        batch-*) n=$((1 + RANDOM % 200)) ;;
        *) n=$((1 + RANDOM % 3)) ;;
        esac
        step_runs=$((step_runs + 1))
        LOAD_ARGS+=(--crash-step "$step:$n" --count "$STEP_COUNT")
    fi

    st=0
    if [ -z "$step" ]; then
        "$IT_PROG" "${LOAD_ARGS[@]}" >> "$ack" 2> "$IT_DIR/logs/run$i.log" &
        LOAD_PID=$!
        sleep "$(printf '0.%03d' $((5 + RANDOM % 146)))"
        kill -9 "$LOAD_PID" 2> /dev/null || true
        # The braces keep bash's "Killed" job report off our stderr.
        { wait "$LOAD_PID"; } 2> /dev/null || st=$?
        LOAD_PID=""
        [ "$st" = 137 ] || die_at "$i" "load exited with status $st before it was killed"
        kills=$((kills + 1))
    else
        # timeout only guards against a hang (status 124); a fired step is 137
        # (timeout re-raises its child's SIGKILL, hence the braces again).
        {
            timeout -s KILL "$WATCHDOG_S" "$IT_PROG" "${LOAD_ARGS[@]}" >> "$ack" \
                2> "$IT_DIR/logs/run$i.log"
        } 2> /dev/null || st=$?
        if [ "$st" = 137 ]; then
            grep -q "crash step $step #$n reached" "$IT_DIR/logs/run$i.log" ||
                die_at "$i" "load died of SIGKILL without reaching crash step $step:$n"
            fired[$step]=$((${fired[$step]:-0} + 1))
        elif [ "$st" = 0 ]; then
            not_reached=$((not_reached + 1))
            missed[$step]=$((${missed[$step]:-0} + 1))
            it_log "iteration $i: $step:$n not reached in $STEP_COUNT commits"
        elif [ "$st" = 124 ]; then
            die_at "$i" "load with --crash-step $step:$n still ran after ${WATCHDOG_S} s (hung?)"
        else
            die_at "$i" "load with --crash-step $step:$n exited with status $st"
        fi
    fi

    : > "$IT_DIR/verify.log"
    "$IT_PROG" verify --dir "$J" --segment-size "$SEG" --acks "$IT_DIR"/acks/*.acks \
        > "$IT_DIR/verify.out" 2> "$IT_DIR/verify.log" ||
        die_at "$i" "$(grep -o 'verify FAILED: .*' "$IT_DIR/verify.log" | head -1)"
    out=$(cat "$IT_DIR/verify.out")
    acked=$(printf '%s\n' "$out" | sed -n 's/.* acked \([0-9]*\),.*/\1/p')
    must=$(printf '%s\n' "$out" | sed -n 's/.* must be committed \([0-9]*\),.*/\1/p')
    if [ -z "$acked" ] || [ -z "$must" ]; then
        die_at "$i" "cannot read verify's output: $out"
    fi
    checked=$((checked + must))
    if [ $((i % 10)) = 0 ] || [ -n "${XAC_CRASH_VERBOSE:-}" ]; then
        it_log "iteration $i: ${out#verify ok: }"
    fi
done

summary=""
for s in "${STEPS[@]}"; do
    summary="$summary $s=${fired[$s]:-0}"
    [ -z "${missed[$s]:-}" ] || summary="$summary (+${missed[$s]} not reached)"
done
it_log "summary: $ITERATIONS iterations ($kills kill -9, $step_runs crash steps), seed $SEED"
it_log "summary: $acked decisions acked in all, $checked acked-and-not-ended lookups over all verifies"
it_log "summary: crash steps fired:$summary; $not_reached runs ended before their step"
it_log "summary: journal directory now $(find "$J" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}') bytes, $(find "$J" -name '*.xacj' | wc -l) segment files"
it_pass
