#!/usr/bin/env python3
"""Writes a Rocket.toml for bench/http.sh: N random deny rules (mixed IPv4/IPv6, random
prefixes, none containing 127.0.0.1), then allow 127.0.0.1, then deny all: the loopback
client is decided by the last-but-one rule, the worst case for a linear scan.

usage: gen_rules.py N PORT [LOG_PATH or ""] [POLICIES or "json" or "tmpl12" or "geo10:DB"]
POLICIES path-scoped policies `/p0` ... `/pK-1` get the same two last rules; "json" makes
the access log JSON, "tmpl12" gives it a `formatter` of 12 fields (TMPL12); "geo10:DB"
puts 10 `deny country:` rules first, read from the country database DB (benches/geoip.rs
writes one with GEO_DB_OUT=DB)."""
import ipaddress
import random
import sys

# A 12-field line, laid out as an nginx user might.
TMPL12 = ('%(asctime)s %(levelname)-7s %(client)s %(peer)s %(verdict)s %(by)s %(rule_index)s '
          '%(network)s %(status)s %(method)s \\"%(url)s\\" \\"%(user_agent)s\\"')

# The countries of benches/geoip.rs's first ten rules (about 8,000 networks each there).
GEO10 = ["RU", "CN", "KP", "IR", "BR", "IN", "VN", "ID", "NG", "PK"]


def networks(n, seed=7):
    """N random networks, the same for the same seed (gen_nginx.py writes the same ones)."""
    rng = random.Random(seed)
    loopback = ipaddress.ip_address("127.0.0.1")
    out = []
    while len(out) < n:
        if len(out) % 2 == 0:
            net = ipaddress.ip_network((rng.getrandbits(32), rng.randint(8, 32)), strict=False)
            if loopback in net:
                continue
        else:
            net = ipaddress.ip_network((rng.getrandbits(128), rng.randint(16, 128)), strict=False)
        out.append(net)
    return out


def main():
    n, port = int(sys.argv[1]), int(sys.argv[2])
    log = sys.argv[3] if len(sys.argv) > 3 else ""
    extra = sys.argv[4] if len(sys.argv) > 4 else "0"
    log_format = "json" if extra == "json" else "text"
    geo = extra[len("geo10:"):] if extra.startswith("geo10:") else ""
    policies = 0 if extra in ("json", "tmpl12") or geo else int(extra)
    out = [
        "[default]",
        'address = "127.0.0.1"',
        f"port = {port}",
        'log_level = "critical"',
        "",
        "[default.allow]",
        "rules = [",
    ]
    if geo:
        out += [f'  {{ deny = "country:{c}" }},' for c in GEO10]
    out += [f'  {{ deny = "{net}" }},' for net in networks(n)]
    out += ['  { allow = "127.0.0.1" },', '  { deny = "all" },', "]"]
    if log:
        formatter = f', formatter = "{TMPL12}"' if extra == "tmpl12" else ""
        out.append(f'access_log = {{ path = "{log}", format = "{log_format}"{formatter} }}')
    if geo:
        out += ["[default.allow.geoip]", f'country_db = "{geo}"']
    for i in range(policies):
        out += [
            f"[default.allow.policies.p{i}]",
            f'paths = ["/p{i}"]',
            'rules = [{ allow = "127.0.0.1" }, { deny = "all" }]',
        ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
