#!/usr/bin/env python3
"""The table bench/http.sh prints: per configuration, the median of each figure over the
rounds, and the ratios to the first configuration as the median of each round's own ratio
(a round's configurations run back to back, so drift of the machine between rounds cancels).

usage: summary.py RESULTS "MODES"   (RESULTS: lines `round mode rps p99_ms ready_s cpu_us rss_mib`)"""
import statistics
import sys

rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
modes = sys.argv[2].split()
first = modes[0]
data = {}
for r, mode, *values in rows:
    data.setdefault(mode, {})[r] = [float(x) for x in values]
med = statistics.median
print(f"\n{'config':<11} {'req/s':>9} {'p99 ms':>8} {'vs ' + first:>9} {'CPU us/req':>11} "
      f"{'vs ' + first:>9} {'ready s':>8} {'RSS MiB':>8}")
for mode in modes:
    rounds = data[mode]
    col = lambda i: med([v[i] for v in rounds.values()])
    ratio = lambda i: med([v[i] / data[first][r][i] for r, v in rounds.items()])
    print(f"{mode:<11} {col(0):9.0f} {col(1):8.2f} {100 * ratio(0):8.1f}% {col(3):11.2f} "
          f"{ratio(3):8.2f}x {col(2):8.2f} {col(4):8.0f}")
