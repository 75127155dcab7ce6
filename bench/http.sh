#!/usr/bin/env bash
# End-to-end HTTP benchmark on loopback: the same release app three ways,
#   none   - without the fairing
#   rules  - with the fairing and 100,000 rules
#   log    - the same with the access log on
# each driven by wrk for a bounded time, in interleaved rounds; prints requests/s and
# p99 latency (median of the rounds) and the ratios to `none`, all from this one run.
#
# usage: bench/http.sh [seconds-per-run (10)] [rounds (3)] [rules (100000)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
nrules=${3:-100000}
port=18080

if ! command -v wrk >/dev/null; then
    echo "installing wrk..." >&2
    (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null || {
        echo "wrk is needed: apt-get install wrk" >&2
        exit 1
    }
fi

cargo build --release --example bench_app -q
app=target/release/examples/bench_app
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

python3 bench/gen_rules.py 1 "$port" >"$tmp/none.toml"
python3 bench/gen_rules.py "$nrules" "$port" >"$tmp/rules.toml"
python3 bench/gen_rules.py "$nrules" "$port" "$tmp/access.log" >"$tmp/log.toml"

run() { # mode -> "rps p99_ms"
    local mode=$1 env=()
    [ "$mode" = none ] && env=(BENCH_NO_FAIRING=1)
    local t0=$(date +%s.%N)
    env "${env[@]}" ROCKET_CONFIG="$tmp/$mode.toml" "$app" >"$tmp/$mode.out" 2>&1 &
    local pid=$!
    for _ in $(seq 1 300); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.1
    done
    local ready=$(echo "$(date +%s.%N) - $t0" | bc)
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 200 ] || {
        echo "$mode: app did not answer 200" >&2; cat "$tmp/$mode.out" >&2; exit 1; }
    wrk -t2 -c64 -d"${secs}s" --latency "http://127.0.0.1:$port/" >"$tmp/wrk.out"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")
    local p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$tmp/wrk.out")
    local non2xx=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.out")
    [ -z "$non2xx" ] || { echo "$mode: $non2xx non-2xx responses" >&2; exit 1; }
    echo "$rps $p99 $ready"
}

declare -A rps p99 ready
for r in $(seq 1 "$rounds"); do
    for mode in none rules log; do
        read -r a b c < <(run "$mode")
        rps[$mode]+="$a "; p99[$mode]+="$b "; ready[$mode]+="$c "
        echo "round $r $mode: $a req/s, p99 $b ms (ready after ${c}s)" >&2
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '\n%-8s %12s %10s %10s %10s\n' mode 'req/s' 'p99 ms' 'vs none' 'ready s'
base=$(echo "${rps[none]}" | median)
for mode in none rules log; do
    m=$(echo "${rps[$mode]}" | median)
    l=$(echo "${p99[$mode]}" | median)
    s=$(echo "${ready[$mode]}" | median)
    printf '%-8s %12.0f %10.2f %9.1f%% %10.2f\n' "$mode" "$m" "$l" "$(echo "100 * $m / $base" | bc -l)" "$s"
done
echo "(wrk -t2 -c64 -d${secs}s, $rounds interleaved rounds, median; $nrules rules; access log lines: $(cat "$tmp"/access.log* 2>/dev/null | wc -l))"
