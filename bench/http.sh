#!/usr/bin/env bash
# End-to-end HTTP benchmark on loopback: the same release app five ways,
#   none     - without the fairing
#   one      - with the fairing and one rule (allow 127.0.0.1, deny all)
#   policies - the same plus 1,000 path-scoped policies, the request under one of them
#   rules    - with the fairing and 100,000 rules
#   log      - the same with the access log on
#   list     - one rule `deny = "@big"`, the set a 1,000,000-line list file
#   reload   - the same, the file replaced (atomically) every 2 s during the run
# every request is GET /p500/x (a catch-all route answers it);
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
python3 bench/gen_rules.py 0 "$port" >"$tmp/one.toml"
python3 bench/gen_rules.py 0 "$port" "" 1000 >"$tmp/policies.toml"
python3 bench/gen_rules.py "$nrules" "$port" >"$tmp/rules.toml"
python3 bench/gen_rules.py "$nrules" "$port" "$tmp/access.log" >"$tmp/log.toml"
python3 bench/gen_list.py 1000000 "$tmp/big.txt"
cp "$tmp/big.txt" "$tmp/big.b"; echo "192.0.2.1" >>"$tmp/big.b"
for m in list reload; do
    printf '[default]\naddress = "127.0.0.1"\nport = %s\nlog_level = "critical"\n[default.allow]\nrules = [{ deny = "@big" }, { allow = "127.0.0.1" }, { deny = "all" }]\n[default.allow.sets]\nbig = { file = "%s" }\n' \
        "$port" "$tmp/big.txt" >"$tmp/$m.toml"
done
url="http://127.0.0.1:$port/p500/x"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system time of a process
hz=$(getconf CLK_TCK)

run() { # mode -> "rps p99_ms ready_s cpu_us_per_request"
    local mode=$1 env=()
    [ "$mode" = none ] && env=(BENCH_NO_FAIRING=1)
    local t0=$(date +%s.%N)
    env "${env[@]}" ROCKET_CONFIG="$tmp/$mode.toml" "$app" >"$tmp/$mode.out" 2>&1 &
    local pid=$!
    for _ in $(seq 1 300); do
        curl -s -o /dev/null "$url" && break
        sleep 0.1
    done
    local ready=$(echo "$(date +%s.%N) - $t0" | bc)
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ] || {
        echo "$mode: app did not answer 200" >&2; cat "$tmp/$mode.out" >&2; exit 1; }
    local reloader=
    if [ "$mode" = reload ]; then
        # Swap between two versions of the list, atomically, every 2 s.
        ( while :; do sleep 2; cp "$tmp/big.b" "$tmp/big.new" && mv "$tmp/big.new" "$tmp/big.txt"
                       sleep 2; cp "$tmp/big.b" "$tmp/big.new" && head -n -1 "$tmp/big.b" >"$tmp/big.new" && mv "$tmp/big.new" "$tmp/big.txt"; done ) &
        reloader=$!
    fi
    local c0=$(cpu_ticks "$pid")
    wrk -t2 -c64 -d"${secs}s" --latency "$url" >"$tmp/wrk.out"
    local c1=$(cpu_ticks "$pid")
    [ -n "$reloader" ] && { kill "$reloader"; wait "$reloader" 2>/dev/null || true; }
    local rss=$(awk '/VmHWM/ {print $2 / 1024}' "/proc/$pid/status")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local n=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
    local cpu=$(echo "($c1 - $c0) * 1000000 / $hz / $n" | bc -l)
    local rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")
    local p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$tmp/wrk.out")
    local non2xx=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.out")
    [ -z "$non2xx" ] || { echo "$mode: $non2xx non-2xx responses" >&2; exit 1; }
    echo "$rps $p99 $ready $cpu $rss"
}

declare -A rps p99 ready cpu rss
for r in $(seq 1 "$rounds"); do
    for mode in ${MODES:-none one policies rules log list reload}; do
        read -r a b c d e < <(run "$mode")
        rps[$mode]+="$a "; p99[$mode]+="$b "; ready[$mode]+="$c "; cpu[$mode]+="$d "; rss[$mode]+="$e "
        printf 'round %s %s: %s req/s, p99 %s ms, server CPU %.2f us/request, peak RSS %s MiB (ready after %ss)\n' \
            "$r" "$mode" "$a" "$b" "$d" "$e" "$c" >&2
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '\n%-9s %10s %8s %9s %12s %9s %8s %9s\n' mode 'req/s' 'p99 ms' 'vs none' 'CPU us/req' 'vs none' 'ready s' 'RSS MiB'
modes=${MODES:-none one policies rules log list reload}
first=${modes%% *}
base=$(echo "${rps[$first]}" | median)
cbase=$(echo "${cpu[$first]}" | median)
for mode in $modes; do
    m=$(echo "${rps[$mode]}" | median)
    l=$(echo "${p99[$mode]}" | median)
    s=$(echo "${ready[$mode]}" | median)
    c=$(echo "${cpu[$mode]}" | median)
    x=$(echo "${rss[$mode]}" | median)
    printf '%-9s %10.0f %8.2f %8.1f%% %12.2f %8.2fx %8.2f %9.0f\n' "$mode" "$m" "$l" \
        "$(echo "100 * $m / $base" | bc -l)" "$c" "$(echo "$c / $cbase" | bc -l)" "$s" "$x"
done
echo "(bash bench/http.sh $secs $rounds $nrules: wrk -t2 -c64 -d${secs}s, $rounds interleaved rounds, median; $nrules rules; access log lines: $(cat "$tmp"/access.log* 2>/dev/null | wc -l))"
