#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: the same release app as
# bench/http.sh, one keep-alive connection sending N and then 3N requests; the difference
# divided by 2N is the cost of one request, start-up excluded. Unlike CPU time it does not
# depend on what else the machine is doing, so small differences (the access log, metrics)
# can be read off a single run. User-space instructions only: the kernel's share (sockets,
# the log's write calls) is not counted.
#
# usage: bench/instructions.sh [N (2000)]   PORT=18081 by default; MODES="..." picks configurations among
#   bare one prom log_text log_json (as in bench/http.sh), code100k nohits100k, log_tmpl12
#   (a text log with a 12-field `formatter`, bench/gen_rules.py's TMPL12), bans1m (one rule
#   and 1,000,000 bans restored from a bans file, bench/gen_bans.py's mix), autoban2 (one rule
#   and two automatic-ban rules looking at every response), xff and xff_autoban (each request
#   from a new client behind a trusted proxy, refused; the second with a `refusals` rule
#   counting each), geo10 (10 `deny country:` rules on benches/geoip.rs's 500,000-network
#   database, then `one`'s rules), refused (every request refused by a rule: the admin
#   page's recent-refusals ring at work), refused0 (the same with `[allow.admin] recent = 0`)
# BASE_APP=path adds MODE@base for any MODE in MODES: that mode measured with another build
#   of bench_app (an older revision's), in the same run, for "costs no more than before".
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
port=${PORT:-18081}
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
# APP=path measures another build of bench_app (say, an older revision's: bench/http.sh's
# BASE_REV leaves one in target/bench-base).
if [ -z "${APP:-}" ]; then
    cargo build --release --example bench_app -q
fi
app=${APP:-$PWD/target/release/examples/bench_app}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
python3 bench/gen_rules.py 1 "$port" >"$tmp/bare.toml"
python3 bench/gen_rules.py 0 "$port" >"$tmp/one.toml"
python3 bench/gen_rules.py 0 "$port" "$tmp/access.log" >"$tmp/log_text.toml"
python3 bench/gen_rules.py 0 "$port" "$tmp/access.json" json >"$tmp/log_json.toml"
python3 bench/gen_rules.py 0 "$port" "$tmp/access.tmpl" tmpl12 >"$tmp/log_tmpl12.toml"
# autoban2: `one` with two automatic-ban rules (404/405 responses and refusals) watching
# every response.
cp "$tmp/one.toml" "$tmp/autoban2.toml"
printf '[default.allow.auto_ban.scanners]\non = "status"\nstatuses = [404, 405]\nmax = 20\nwindow_secs = 60\nban_secs = 600\n[default.allow.auto_ban.refused]\non = "refusals"\nmax = 20\nwindow_secs = 60\nban_secs = 600\n' >>"$tmp/autoban2.toml"
# xff: `one` behind a trusted proxy (127.0.0.1), each request naming another client in
# X-Forwarded-For (so each is refused: an attack from 1,000s of addresses); xff_autoban: the
# same with a `refusals` rule counting every one of them (max_tracked 100000).
sed 's/^rules = /trusted_proxies = ["127.0.0.1"]\nrules = /' "$tmp/one.toml" >"$tmp/xff.toml"
cp "$tmp/xff.toml" "$tmp/xff_autoban.toml"
printf '[default.allow.auto_ban.refused]\non = "refusals"\nmax = 20\nwindow_secs = 60\nban_secs = 600\n' >>"$tmp/xff_autoban.toml"
python3 bench/gen_rules.py 0 "$port" | sed 's/{ allow = "127.0.0.1" }/{ deny = "127.0.0.1" }/' >"$tmp/refused.toml"
printf '[default.allow.admin]\nrecent = 0\n' | cat "$tmp/refused.toml" - >"$tmp/refused0.toml"
if [[ " ${MODES:-} " == *" bans1m "* ]]; then
    python3 bench/gen_bans.py 1000000 "$tmp/bans1m.txt"
    python3 bench/gen_rules.py 0 "$port" >"$tmp/bans1m.toml"
    printf '[default.allow.bans]\nfile = "%s"\n' "$tmp/bans1m.txt" >>"$tmp/bans1m.toml"
fi
if [[ " ${MODES:-} " == *" geo10 "* ]]; then
    GEO_DB_OUT="$tmp/country.mmdb" cargo bench --bench geoip -q >/dev/null
    python3 bench/gen_rules.py 0 "$port" "" "geo10:$tmp/country.mmdb" >"$tmp/geo10.toml"
fi

count() { # mode requests -> instructions
    local mode=${1%@base} env=() config=${1%@base} bin=$app
    [[ $1 == *@base ]] && bin=$BASE_APP
    case $mode in
    bare) env=(BENCH_NO_FAIRING=1) ;;
    prom) env=(BENCH_PROMETHEUS=1); config=one ;;
    code100k) env=(BENCH_RULES_IN_CODE=100000); config=bare ;;
    nohits100k) env=(BENCH_RULES_IN_CODE=100000 BENCH_NO_HITS=1); config=bare ;;
    esac
    env "${env[@]}" ROCKET_CONFIG="$tmp/$config.toml" valgrind --tool=callgrind \
        --callgrind-out-file="$tmp/cg.out" "$bin" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$port/p500/x" && break; sleep 0.1; done
    local xff=0
    [[ $mode == xff* ]] && xff=1
    python3 - "$port" "$2" "$xff" <<'EOF'
import socket, sys
port, n, xff = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
for i in range(n):
    # With xff, a client of its own each time (10.0.0.0/8 and on, counting up).
    extra = b"X-Forwarded-For: 10.%d.%d.%d\r\n" % (i >> 16 & 255, i >> 8 & 255, i & 255) if xff else b""
    s.sendall(b"GET /p500/x HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n" + extra + b"\r\n")
    length = 0
    while True:
        line = f.readline()
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        if line in (b"\r\n", b""):
            break
    f.read(length)
EOF
    sleep 0.5
    kill -INT "$pid"; wait "$pid" 2>/dev/null || true
    awk '/^totals:/ {print $2}' "$tmp/cg.out"
}

modes=${MODES:-bare one prom log_text log_json}
first=${modes%% *}
printf '%-10s %14s %10s\n' config 'instr/request' "vs $first"
for mode in $modes; do
    a=$(count "$mode" "$n"); b=$(count "$mode" $((3 * n)))
    per=$(( (b - a) / (2 * n) ))
    [ "$mode" = "$first" ] && base=$per
    printf '%-10s %14d %9.3fx\n' "$mode" "$per" "$(echo "$per / $base" | bc -l)"
done
echo "(${MODES:+MODES=\"$MODES\" }${APP:+APP=$APP }${BASE_APP:+BASE_APP=$BASE_APP }bash bench/instructions.sh $n: callgrind, $n and $((3 * n)) requests on one connection; rocket-allow $(git rev-parse --short HEAD))"
