#!/usr/bin/env python3
"""Writes an nginx.conf for bench/http.sh: the same N random deny rules as gen_rules.py
(same seed, same order), then `allow 127.0.0.1; deny all;`, in front of `empty_gif`
(`return` would answer before the access phase, so `deny` would never apply).

usage: gen_nginx.py N PORT DIR   (DIR: pid file and temp paths)"""
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from gen_rules import networks  # noqa: E402

n, port, d = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rules = "\n".join(f"            deny {net};" for net in networks(n))
print(f"""daemon off;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log crit;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
{rules}
            allow 127.0.0.1;
            deny all;
            empty_gif;
        }}
    }}
}}""")
