"""kazoo's recipes against a ZooKeeper-protocol server, several competing
clients each. Usage: kazoo_recipes.py HOSTS BASE. Prints "ok NAME" per
recipe and exits non-zero on the first failure."""
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.recipe.cache import TreeCache, TreeEvent

HOSTS, BASE = sys.argv[1], sys.argv[2]
WAIT = 30


def client():
    c = KazooClient(hosts=HOSTS, timeout=10)
    c.start(timeout=WAIT)
    return c


def check(cond, what):
    if not cond:
        print("FAIL " + what, flush=True)
        sys.exit(1)


def run_threads(fns):
    ts = [threading.Thread(target=f) for f in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(WAIT * 2)
        check(not t.is_alive(), "thread finished")


clients = [client() for _ in range(4)]
main = clients[0]
main.ensure_path(BASE)

# Lock: never two holders at once.
holders, max_holders, lock_mu = [0], [0], threading.Lock()
def locker(c, i):
    def f():
        lk = c.Lock(BASE + "/lock", "c%d" % i)
        for _ in range(5):
            with lk:
                with lock_mu:
                    holders[0] += 1
                    max_holders[0] = max(max_holders[0], holders[0])
                time.sleep(0.01)
                with lock_mu:
                    holders[0] -= 1
    return f
run_threads([locker(c, i) for i, c in enumerate(clients)])
check(max_holders[0] == 1, "lock held by %d at once" % max_holders[0])
print("ok Lock", flush=True)

# Election: every candidate leads once, one at a time.
led, leading, max_leading = [], [0], [0]
def candidate(c, i):
    def f():
        def lead():
            with lock_mu:
                leading[0] += 1
                max_leading[0] = max(max_leading[0], leading[0])
                led.append(i)
            time.sleep(0.02)
            with lock_mu:
                leading[0] -= 1
        c.Election(BASE + "/election", "c%d" % i).run(lead)
    return f
run_threads([candidate(c, i) for i, c in enumerate(clients)])
check(sorted(led) == list(range(len(clients))) and max_leading[0] == 1, "election %s max %d" % (led, max_leading[0]))
print("ok Election", flush=True)

# Semaphore: at most 2 leases.
inside, max_inside = [0], [0]
def sem_user(c, i):
    def f():
        sem = c.Semaphore(BASE + "/sem", "c%d" % i, max_leases=2)
        for _ in range(3):
            with sem:
                with lock_mu:
                    inside[0] += 1
                    max_inside[0] = max(max_inside[0], inside[0])
                time.sleep(0.02)
                with lock_mu:
                    inside[0] -= 1
    return f
run_threads([sem_user(c, i) for i, c in enumerate(clients)])
check(1 <= max_inside[0] <= 2, "semaphore let %d in" % max_inside[0])
print("ok Semaphore", flush=True)

# Counter: concurrent increments all count (version-checked setData retries).
def counting(c):
    def f():
        ctr = c.Counter(BASE + "/counter")
        for _ in range(25):
            ctr += 1
    return f
run_threads([counting(c) for c in clients])
final = main.Counter(BASE + "/counter").value
check(final == 25 * len(clients), "counter %d" % final)
print("ok Counter", flush=True)

# Barrier and DoubleBarrier.
b = main.Barrier(BASE + "/barrier")
b.create()
passed = []
def waiter(c, i):
    def f():
        c.sync(BASE + "/barrier")  # the barrier was created through another server
        if c.Barrier(BASE + "/barrier").wait(WAIT):
            passed.append(i)
    return f
ts = [threading.Thread(target=waiter(c, i)) for i, c in enumerate(clients[1:])]
for t in ts:
    t.start()
time.sleep(0.2)
check(not passed, "barrier let someone through early")
b.remove()
for t in ts:
    t.join(WAIT)
check(sorted(passed) == [0, 1, 2], "barrier passed %s" % passed)
entered = []
def double(c, i):
    def f():
        db = c.DoubleBarrier(BASE + "/double", len(clients))
        db.enter()
        entered.append(i)
        db.leave()
    return f
run_threads([double(c, i) for i, c in enumerate(clients)])
check(len(entered) == len(clients), "double barrier %s" % entered)
print("ok Barrier", flush=True)

# Queue and LockingQueue: every item once, priorities respected.
q = main.Queue(BASE + "/queue")
for i in range(20):
    q.put(b"%d" % i)
got, got_mu = [], threading.Lock()
def consumer(c):
    def f():
        cq = c.Queue(BASE + "/queue")
        while True:
            item = cq.get()
            if item is None:
                return
            with got_mu:
                got.append(int(item))
    return f
run_threads([consumer(c) for c in clients])
check(sorted(got) == list(range(20)), "queue gave %s" % sorted(got))
lq = main.LockingQueue(BASE + "/lqueue")
lq.put(b"low", priority=100)
lq.put(b"high", priority=1)
check(lq.get(WAIT) == b"high", "locking queue priority")
check(lq.consume(), "locking queue consume")
print("ok Queue", flush=True)

# Party.
parties = [c.Party(BASE + "/party", "m%d" % i) for i, c in enumerate(clients)]
for p in parties:
    p.join()
main.sync(BASE + "/party")  # other clients' joins went through other servers
check(len(main.Party(BASE + "/party")) == len(clients), "party size")
parties[0].leave()
main.sync(BASE + "/party")
check(len(main.Party(BASE + "/party")) == len(clients) - 1, "party after leave")
print("ok Party", flush=True)

# DataWatch and ChildrenWatch see another client's changes, in order.
seen_data, seen_kids = [], []
ev = threading.Event()
main.create(BASE + "/watched", b"v0")
@main.DataWatch(BASE + "/watched")
def dw(data, stat):
    seen_data.append(data)
    if data == b"v3":
        ev.set()
@main.ChildrenWatch(BASE + "/watched")
def cw(children):
    seen_kids.append(sorted(children))
other = clients[1]
for i in (1, 2, 3):
    other.set(BASE + "/watched", b"v%d" % i)
other.create(BASE + "/watched/k1")
check(ev.wait(WAIT), "data watch saw v3 (saw %s)" % seen_data)
deadline = time.time() + WAIT
while ["k1"] not in seen_kids and time.time() < deadline:
    time.sleep(0.05)
check(seen_data[0] == b"v0" and seen_data[-1] == b"v3", "data watch %s" % seen_data)
check(["k1"] in seen_kids, "children watch %s" % seen_kids)
print("ok DataWatch/ChildrenWatch", flush=True)

# TreeCache follows a subtree.
main.ensure_path(BASE + "/tree/a")
tc = TreeCache(clients[2], BASE + "/tree")
ready = threading.Event()
added = set()
def listener(event):
    if event.event_type == TreeEvent.INITIALIZED:
        ready.set()
    if event.event_type == TreeEvent.NODE_ADDED:
        added.add(event.event_data.path)
tc.listen(listener)
tc.start()
check(ready.wait(WAIT), "tree cache initialized")
main.create(BASE + "/tree/b/c", b"x", makepath=True)
deadline = time.time() + WAIT
while BASE + "/tree/b/c" not in added and time.time() < deadline:
    time.sleep(0.05)
check(BASE + "/tree/b/c" in added, "tree cache saw %s" % sorted(added))
data = tc.get_data(BASE + "/tree/b/c")
check(data is not None and data.data == b"x", "tree cache data")
tc.close()
print("ok TreeCache", flush=True)

# Ephemerals go when their session closes; another client sees it.
gone = threading.Event()
clients[3].create(BASE + "/eph", ephemeral=True)
def w(event):
    gone.set()
main.sync(BASE + "/eph")
check(main.exists(BASE + "/eph", watch=w) is not None, "ephemeral exists")
clients[3].stop()
check(gone.wait(WAIT), "ephemeral deleted at close")
print("ok Ephemeral", flush=True)

for c in clients[:3]:
    c.stop()
print("done", flush=True)
