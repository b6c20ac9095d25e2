"""Sequential setData and getData latency of kazoo against one address.

Run by dualwrite's BenchmarkProxyKazoo with Debian's python3 (python3-kazoo):
kazoo_latency.py --hosts HOST:PORT --path PATH --n N. Creates PATH if absent,
warms up, then times N setData and N getData calls, one at a time, and prints
one JSON line: p50 and mean of each, in milliseconds.
"""
import argparse
import json
import statistics
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--n", type=int, default=2000)
    a = ap.parse_args()
    zk = KazooClient(hosts=a.hosts, timeout=30)
    zk.start(timeout=30)
    try:
        try:
            zk.create(a.path, b"")
        except NodeExistsError:
            pass
        value = b"x" * 128
        for _ in range(200):  # warm-up: the JIT, the connection
            zk.set(a.path, value)
            zk.get(a.path)
        sets, gets = [], []
        for _ in range(a.n):
            t = time.perf_counter()
            zk.set(a.path, value)
            sets.append(time.perf_counter() - t)
        for _ in range(a.n):
            t = time.perf_counter()
            zk.get(a.path)
            gets.append(time.perf_counter() - t)
    finally:
        zk.stop()
        zk.close()
    ms = lambda v: round(v * 1000, 4)
    print(json.dumps({
        "n": a.n,
        "set_p50_ms": ms(statistics.median(sets)), "set_mean_ms": ms(statistics.fmean(sets)),
        "get_p50_ms": ms(statistics.median(gets)), "get_mean_ms": ms(statistics.fmean(gets)),
    }))


if __name__ == "__main__":
    main()
