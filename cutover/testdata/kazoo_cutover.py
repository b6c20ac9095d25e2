"""A kazoo client that lives through the cutover (cutover's tests).

Connects through the proxy (argv[1]), creates ROOT (argv[2]), an ephemeral
ROOT/eph and ROOT/watched with a DataWatch (kazoo drops its watches when a connection
is lost, firing them with type NONE, and has no setWatches: the DataWatch
recipe reads and watches again after the reconnect), and prints
{"ready": ...}. On the
line "switched" it checks, retrying through connection losses, that its
session is the same and owns ROOT/eph, and prints {"resumed": ...}. On the
line "changed" it waits for the watch and prints {"fired": ...}, with every
connection state it saw.
"""
import json
import sys
import threading

from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

hosts, root = sys.argv[1], sys.argv[2]
retry = dict(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5)
zk = KazooClient(hosts=hosts, timeout=10.0, connection_retry=retry, command_retry=retry)
states = []
zk.add_listener(lambda s: states.append(str(s)))
zk.start(timeout=60)
zk.ensure_path(root)
zk.create(root + "/eph", b"mine", ephemeral=True)
zk.create(root + "/watched", b"v0")
fired = threading.Event()
events = []


@zk.DataWatch(root + "/watched")
def watch(data, stat, ev):
    if ev is not None:
        events.append([str(ev.type), ev.path, data.decode() if data else None])
    if data == b"v1":
        fired.set()


session = zk.client_id[0]
print(json.dumps({"ready": True, "session": hex(session)}), flush=True)

for line in sys.stdin:
    cmd = line.strip()
    if cmd == "switched":
        r = KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5, deadline=60)
        stat = r(zk.exists, root + "/eph")
        data, _ = r(zk.get, root + "/eph")
        print(json.dumps({"resumed": True, "session": hex(zk.client_id[0]),
                          "owner": hex(stat.ephemeralOwner) if stat else None,
                          "data": data.decode(), "states": states}), flush=True)
    elif cmd == "changed":
        ok = fired.wait(60)
        print(json.dumps({"fired": ok, "events": events, "states": states,
                          "session": hex(zk.client_id[0])}), flush=True)
    elif cmd == "stop":
        break
zk.stop()
zk.close()
