#!/usr/bin/env python3
"""Writes a bans file for bench/http.sh and benches/bans.rs: N distinct bans, the shape an
attack leaves: 40% IPv4 addresses, 10% IPv4 /24s, 30% IPv6 addresses, 20% IPv6 /64s; half
until lifted, half ending in a day; a few shared reasons. None covers 127.0.0.0/8.

usage: gen_bans.py N PATH"""
import ipaddress
import random
import sys
import time

n, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(5)
seen = set()
until = int(time.time()) + 86400
reasons = ["scanner", "login failures", "", "abuse report"]
with open(path, "w") as f:
    while len(seen) < n:
        kind = rng.random()
        if kind < 0.5:
            a = rng.getrandbits(32)
            if a >> 24 == 127:
                continue
            prefix = 32 if kind < 0.4 else 24
            net = ipaddress.ip_network((a, prefix), strict=False)
        else:
            prefix = 128 if kind < 0.8 else 64
            net = ipaddress.ip_network((0x2001_0db8 << 96 | rng.getrandbits(96), prefix), strict=False)
        if net in seen:
            continue
        seen.add(net)
        expiry = "-" if rng.random() < 0.5 else str(until + rng.randrange(3600))
        f.write(f"{net} {expiry} {rng.choice(reasons)}\n")
