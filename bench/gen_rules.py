#!/usr/bin/env python3
"""Writes a Rocket.toml for bench/http.sh: N random deny rules (mixed IPv4/IPv6, random
prefixes, none containing 127.0.0.1), then allow 127.0.0.1, then deny all: the loopback
client is decided by the last-but-one rule, the worst case for a linear scan.

usage: gen_rules.py N PORT [LOG_PATH or ""] [POLICIES]
POLICIES path-scoped policies `/p0` ... `/pK-1` get the same two last rules."""
import ipaddress
import random
import sys

n, port = int(sys.argv[1]), int(sys.argv[2])
log = sys.argv[3] if len(sys.argv) > 3 else ""
policies = int(sys.argv[4]) if len(sys.argv) > 4 else 0
rng = random.Random(7)
loopback = ipaddress.ip_address("127.0.0.1")
out = [
    "[default]",
    'address = "127.0.0.1"',
    f"port = {port}",
    'log_level = "critical"',
    "",
    "[default.allow]",
    "rules = [",
]
made = 0
while made < n:
    if made % 2 == 0:
        net = ipaddress.ip_network((rng.getrandbits(32), rng.randint(8, 32)), strict=False)
        if loopback in net:
            continue
    else:
        net = ipaddress.ip_network((rng.getrandbits(128), rng.randint(16, 128)), strict=False)
    out.append(f'  {{ deny = "{net}" }},')
    made += 1
out += ['  { allow = "127.0.0.1" },', '  { deny = "all" },', "]"]
if log:
    out.append(f'access_log = "{log}"')
for i in range(policies):
    out += [
        f"[default.allow.policies.p{i}]",
        f'paths = ["/p{i}"]',
        'rules = [{ allow = "127.0.0.1" }, { deny = "all" }]',
    ]
print("\n".join(out))
