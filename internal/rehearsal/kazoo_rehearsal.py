"""kazoo's side of a cutover rehearsal (package rehearsal; run by Go).

argv: HOSTS ROOT N. Starts N KazooClients through HOSTS (the proxy), each with
an ephemeral ROOT/kz/eph-<i>, contending in kazoo's Election (ROOT/kz/election:
a leader holds a short term, then resigns) and for its Lock (ROOT/kz/lock, held
a few milliseconds). Every acquisition and release is logged under one lock,
so the log's order is the order in which the holders saw themselves hold.
Prints {"ready": ...} once every client runs; then, on stdin:
  "stop"  stops contending and prints {"report": ...}: the log, each client's
          session id at the start and now, and the connection states it saw;
  "close" (or EOF) closes the clients and exits.
Acquisitions so far are printed as {"acquired": ...} lines as they happen, so
that the caller can wait for progress.
"""
import json
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import CancelledError

hosts, root, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
retry = dict(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5)
out_lock = threading.Lock()
log = []
stop = threading.Event()


def emit(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def record(who, what):
    with out_lock:
        log.append([time.time(), who, what])
        if what in ("lock-acquired", "elected"):
            sys.stdout.write(json.dumps({"acquired": what, "at": time.time()}) + "\n")
            sys.stdout.flush()


class Contender:
    def __init__(self, i):
        self.name = "kazoo-%d" % i
        self.states = []
        self.zk = KazooClient(hosts=hosts, timeout=20.0, connection_retry=retry, command_retry=retry)
        self.zk.add_listener(lambda s: self.states.append([time.time(), str(s)]))
        self.zk.start(timeout=60)
        self.session = self.zk.client_id[0]
        self.eph = "%s/kz/eph-%d" % (root, i)
        self.zk.create(self.eph, self.name.encode(), ephemeral=True)
        self.election = self.zk.Election(root + "/kz/election", self.name)
        self.lock = self.zk.Lock(root + "/kz/lock", self.name)
        self.threads = [threading.Thread(target=self.elect, daemon=True),
                        threading.Thread(target=self.lock_loop, daemon=True)]

    def lead(self):
        record(self.name, "elected")
        stop.wait(0.2)
        record(self.name, "resigned")

    def elect(self):
        while not stop.is_set():
            self.election.run(self.lead)

    def lock_loop(self):
        while not stop.is_set():
            try:
                if not self.lock.acquire():
                    continue
            except CancelledError:
                continue  # the stop
            record(self.name, "lock-acquired")
            stop.wait(0.005)
            record(self.name, "lock-released")
            self.lock.release()

    def report(self):
        return {"name": self.name, "session": hex(self.session),
                "session_now": hex(self.zk.client_id[0]) if self.zk.client_id else None,
                "ephemeral": self.eph, "states": self.states}


contenders = [Contender(i) for i in range(n)]
for c in contenders:
    for t in c.threads:
        t.start()
emit({"ready": True, "sessions": [hex(c.session) for c in contenders]})

for line in sys.stdin:
    cmd = line.strip()
    if cmd == "stop":
        stop.set()
        for c in contenders:
            c.election.cancel()
            c.lock.cancel()
        alive = []
        for c in contenders:
            for t in c.threads:
                t.join(60)
                if t.is_alive():
                    alive.append(c.name)
        with out_lock:
            rep = {"report": True, "log": list(log), "clients": [c.report() for c in contenders], "stuck": alive}
        emit(rep)
    elif cmd == "close":
        break
for c in contenders:
    c.zk.stop()
    c.zk.close()
