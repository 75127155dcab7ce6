#!/usr/bin/env bash
# Whole-process HTTP benchmark on loopback: the same release app in several configurations
# (and nginx, when it is installed), each driven by wrk for a bounded time, in interleaved
# rounds. For each configuration it prints the medians of: requests/s, p99 latency, server
# CPU microseconds per request (user + system time of the server process, from /proc,
# divided by the requests served: steadier than req/s when wrk shares the cores), start-up
# time (process start to first answer) and peak RSS (VmHWM); and the ratios to the bare
# app in the same run. Every request is GET /p500/x, answered 200 by a catch-all route.
#
# Configurations (MODES="..." picks some, in that order; the first is the ratios' base):
#   bare        the app without the fairing
#   one         the fairing, one rule (allow 127.0.0.1, deny all)
#   prom        the same with a Prometheus recorder installed (metrics recorded)
#   policies    one rule plus 1,000 path-scoped policies, the request under one of them
#   toml100k    100,000 rules in Rocket.toml
#   code100k    the same 100,000 rules built in code (AllowFairing::custom)
#   nohits100k  the same with rule_hits = false
#   code1m      1,000,000 rules built in code
#   toml1m      1,000,000 rules in Rocket.toml (not by default: about 20 s and 4 GB to start)
#   log_text    one rule, access log on (text)
#   log_json    one rule, access log on (JSON)
#   list        one rule `deny @big`, the set a 1,000,000-line list file
#   reload      the same, the file replaced (atomically) every 2 s during the run
#   bans1m      one rule, and 1,000,000 bans restored from a bans file (bench/gen_bans.py;
#               none of them the client)
#   banstorm    one rule and a bans file, while 10,000 new bans a second are made (an attack
#               being banned: 100,000 over a 10 s run)
#   store       one rule and [allow.store] on a redis-server this script starts (when
#               redis-server is installed)
#   nginx1      nginx 1.x, `allow 127.0.0.1; deny all;` and empty_gif (if installed)
#   nginx100k   nginx with the same 100,000 deny rules first
# The server runs on CPU 0 and wrk on CPU 1 (taskset), so that the load generator does not
# steal the server's core mid-run; PIN=0 lets both float over every core.
# BASE_REV=<git revision> adds `one@base` (and any `MODE@base` in MODES): the app built
# from that revision, measured in the same run (for "no slower than before").
#
# usage: bench/http.sh [seconds-per-run (10)] [rounds (3)] [rules (100000)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
nrules=${3:-100000}
port=18080
command_line="$(printf '%s ' ${MODES:+MODES=\"$MODES\"} ${BASE_REV:+BASE_REV=$BASE_REV} bash bench/http.sh "$secs" "$rounds" "$nrules")"

if ! command -v wrk >/dev/null; then
    echo "installing wrk..." >&2
    (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null || {
        echo "wrk is needed: apt-get install wrk" >&2
        exit 1
    }
fi
nginx=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
default_modes="bare one prom policies toml100k code100k nohits100k code1m log_text log_json list reload bans1m banstorm"
command -v redis-server >/dev/null && default_modes+=" store"
[ -n "$nginx" ] && default_modes+=" nginx1 nginx100k"
[ -n "${BASE_REV:-}" ] && default_modes="bare one one@base ${default_modes#bare one }"
modes=${MODES:-$default_modes}
server_cpu=() load_cpu=()
if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    server_cpu=(taskset -c 0) load_cpu=(taskset -c 1)
fi

cargo build --release --example bench_app -q
app=${CARGO_TARGET_DIR:-target}/release/examples/bench_app
tmp=$(mktemp -d)
redis_pid=
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
    [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
    [ -n "${BASE_REV:-}" ] && git worktree remove --force "$tmp/base" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

base_app=
if [ -n "${BASE_REV:-}" ]; then
    git worktree add -q --detach "$tmp/base" "$BASE_REV"
    CARGO_TARGET_DIR="$PWD/target/bench-base" cargo build --release --example bench_app -q \
        --manifest-path "$tmp/base/Cargo.toml"
    base_app=target/bench-base/release/examples/bench_app
fi

python3 bench/gen_rules.py 1 "$port" >"$tmp/bare.toml"
python3 bench/gen_rules.py 0 "$port" >"$tmp/one.toml"
python3 bench/gen_rules.py 0 "$port" "" 1000 >"$tmp/policies.toml"
python3 bench/gen_rules.py "$nrules" "$port" >"$tmp/toml100k.toml"
if [[ " $modes " == *" toml1m "* ]]; then python3 bench/gen_rules.py 1000000 "$port" >"$tmp/toml1m.toml"; fi
python3 bench/gen_rules.py 0 "$port" "$tmp/access.log" >"$tmp/log_text.toml"
python3 bench/gen_rules.py 0 "$port" "$tmp/access.json" json >"$tmp/log_json.toml"
if [[ " $modes " == *" list "* || " $modes " == *" reload "* ]]; then
    python3 bench/gen_list.py 1000000 "$tmp/big.txt"
    cp "$tmp/big.txt" "$tmp/big.b"; echo "192.0.2.1" >>"$tmp/big.b"
fi
for m in list reload; do
    printf '[default]\naddress = "127.0.0.1"\nport = %s\nlog_level = "critical"\n[default.allow]\nrules = [{ deny = "@big" }, { allow = "127.0.0.1" }, { deny = "all" }]\n[default.allow.sets]\nbig = { file = "%s" }\n' \
        "$port" "$tmp/big.txt" >"$tmp/$m.toml"
done
if [[ " $modes " == *" bans1m "* ]]; then python3 bench/gen_bans.py 1000000 "$tmp/bans1m.txt"; fi
for m in bans1m banstorm; do
    python3 bench/gen_rules.py 0 "$port" >"$tmp/$m.toml"
    printf '[default.allow.bans]\nfile = "%s"\n' "$tmp/$m.txt" >>"$tmp/$m.toml"
done
if [[ " $modes " == *" store "* ]]; then
    redis_port=$((port + 1))
    redis-server --save '' --appendonly no --bind 127.0.0.1 --port "$redis_port" >/dev/null &
    redis_pid=$!
    python3 bench/gen_rules.py 0 "$port" >"$tmp/store.toml"
    printf '[default.allow.store]\nredis = "redis://127.0.0.1:%s/0"\n' "$redis_port" >>"$tmp/store.toml"
fi
if [ -n "$nginx" ]; then
    python3 bench/gen_nginx.py 0 "$port" "$tmp" >"$tmp/nginx1.conf"
    python3 bench/gen_nginx.py "$nrules" "$port" "$tmp" >"$tmp/nginx100k.conf"
fi
url="http://127.0.0.1:$port/p500/x"

hz=$(getconf CLK_TCK)
cpu_ticks() { # user + system time of the processes
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$t"
}
peak_rss() { # the sum of VmHWM, MiB
    local k=0 p
    for p in "$@"; do k=$((k + $(awk '/VmHWM/ {print $2}' "/proc/$p/status"))); done
    echo "$k / 1024" | bc -l
}

start() { # mode -> starts the server; sets pid and pids
    local mode=$1 bin=$app env=()
    if [[ $mode == *@base ]]; then bin=$base_app; mode=${mode%@base}; fi
    case $mode in
    nginx*)
        "${server_cpu[@]}" "$nginx" -c "$tmp/$mode.conf" -p "$tmp" 2>"$tmp/$mode.out" &
        pid=$!
        ;;
    *)
        local config=$mode
        case $mode in
        bare) env=(BENCH_NO_FAIRING=1) ;;
        prom) env=(BENCH_PROMETHEUS=1); config=one ;;
        code100k) env=(BENCH_RULES_IN_CODE=$nrules); config=bare ;;
        nohits100k) env=(BENCH_RULES_IN_CODE=$nrules BENCH_NO_HITS=1); config=bare ;;
        code1m) env=(BENCH_RULES_IN_CODE=1000000); config=bare ;;
        banstorm) env=(BENCH_BAN_STORM=10000); rm -f "$tmp/banstorm.txt" ;;
        esac
        env "${env[@]}" ROCKET_CONFIG="$tmp/$config.toml" "${server_cpu[@]}" "$bin" >"$tmp/$mode.out" 2>&1 &
        pid=$!
        ;;
    esac
}

run() { # mode -> "rps p99_ms ready_s cpu_us_per_request rss_mib"
    local mode=$1
    local t0=$(date +%s.%N)
    start "$mode"
    for _ in $(seq 1 1200); do
        curl -s -o /dev/null "$url" && break
        sleep 0.05
    done
    local ready=$(echo "$(date +%s.%N) - $t0" | bc)
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ] || {
        echo "$mode: the server did not answer 200" >&2; cat "$tmp/${mode%@base}.out" >&2; exit 1; }
    local pids="$pid $(pgrep -P "$pid" | tr '\n' ' ')" # nginx: master and workers
    local reloader=
    if [ "$mode" = reload ]; then
        # Swap between two versions of the list, atomically, every 2 s.
        ( while :; do sleep 2; cp "$tmp/big.b" "$tmp/big.new" && mv "$tmp/big.new" "$tmp/big.txt"
                       sleep 2; head -n -1 "$tmp/big.b" >"$tmp/big.new" && mv "$tmp/big.new" "$tmp/big.txt"; done ) &
        reloader=$!
    fi
    local c0=$(cpu_ticks $pids)
    "${load_cpu[@]}" wrk -t2 -c64 -d"${secs}s" --latency "$url" >"$tmp/wrk.out"
    local c1=$(cpu_ticks $pids)
    [ -n "$reloader" ] && { kill "$reloader"; wait "$reloader" 2>/dev/null || true; }
    local rss=$(peak_rss $pids)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local n=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
    local cpu=$(echo "($c1 - $c0) * 1000000 / $hz / $n" | bc -l)
    local rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")
    local p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$tmp/wrk.out")
    local non2xx=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.out")
    [ -z "$non2xx" ] || { echo "$mode: $non2xx non-2xx responses" >&2; exit 1; }
    echo "$rps $p99 $ready $cpu $rss"
}

for r in $(seq 1 "$rounds"); do
    for mode in $modes; do
        read -r a b c d e < <(run "$mode")
        echo "$r $mode $a $b $c $d $e" >>"$tmp/results"
        printf 'round %s %s: %s req/s, p99 %s ms, server CPU %.2f us/request, peak RSS %.0f MiB, ready after %.2f s\n' \
            "$r" "$mode" "$a" "$b" "$d" "$e" "$c" >&2
    done
done

# Medians of each figure; the ratios are medians of the ratios within each round (the
# machine drifts between rounds, and a round's configurations run back to back).
python3 bench/summary.py "$tmp/results" "$modes"
pinned=; [ ${#server_cpu[@]} -gt 0 ] && pinned="server on CPU 0, wrk on CPU 1; "
echo "($command_line: wrk -t2 -c64 -d${secs}s, $rounds interleaved rounds, medians (ratios: of each round's); $nrules rules; $pinned$(nproc) cores; rocket-allow $(git rev-parse --short HEAD))"
