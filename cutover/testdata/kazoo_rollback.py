"""A kazoo client that writes while the journal is primary and lives through
the rollback (cutover's TestRollbackCluster).

Connects through a proxy (argv[1]) with a session timeout of argv[3] seconds
(default 10), creates ROOT (argv[2]) and an ephemeral
ROOT/eph, and prints {"ready": ..., "session": ...}. Then, one command a line:

  write PREFIX  writes nodes of every kind under PREFIX (persistent,
                sequential, ephemeral, ephemeral sequential, a transaction
                with a sequential create, setData, setACL, a create and a
                delete) and prints {"acked": [...]}: every write kazoo saw
                acknowledged, with the path (sequential names as ZooKeeper
                or the journal gave them), data, ACL, whether it is an
                ephemeral and whether it was deleted. Nothing is retried: a
                write that failed fails the command ({"error": ...}).
  switched      checks, retrying through connection losses, that the session
                is the same and owns ROOT/eph; prints {"resumed": ...}.
  stop          closes the session.
"""
import json
import sys

from kazoo.client import KazooClient
from kazoo.retry import KazooRetry
from kazoo.security import make_acl, make_digest_acl

hosts, root = sys.argv[1], sys.argv[2]
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0  # the session's, seconds
retry = dict(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5)
zk = KazooClient(hosts=hosts, timeout=timeout, connection_retry=retry)
states = []
zk.add_listener(lambda s: states.append(str(s)))
zk.start(timeout=60)
zk.ensure_path(root)
zk.create(root + "/eph", b"mine", ephemeral=True)
print(json.dumps({"ready": True, "session": hex(zk.client_id[0])}), flush=True)

WORLD = [[31, "world", "anyone"]]


def acl_json(acls):
    return [[a.perms, a.id.scheme, a.id.id] for a in acls]


def write(prefix):
    acked = []

    def mk(path, data, **kw):
        name = zk.create(path, data.encode(), **kw)
        acked.append({"path": name, "data": data, "acl": WORLD,
                      "ephemeral": bool(kw.get("ephemeral"))})
        return name

    mk(prefix, "k")
    mk(prefix + "/seq-", "s0", sequence=True)
    mk(prefix + "/seq-", "s1", sequence=True)
    mk(prefix + "/e", "e", ephemeral=True)
    mk(prefix + "/eseq-", "es", ephemeral=True, sequence=True)
    tx = zk.transaction()
    tx.create(prefix + "/t", b"t0")
    tx.create(prefix + "/seq-", b"in-txn", sequence=True)
    tx.set_data(prefix + "/t", b"t1")
    res = tx.commit()
    for r in res:
        if isinstance(r, Exception):
            raise r
    acked.append({"path": prefix + "/t", "data": "t1", "acl": WORLD, "ephemeral": False})
    acked.append({"path": res[1], "data": "in-txn", "acl": WORLD, "ephemeral": False})
    gone = mk(prefix + "/gone", "g")
    zk.delete(gone)
    acked[-1]["gone"] = True
    # Last (no child can be created under it after): writable by bob only;
    # anyone may still read it (the proxies' reconcilers and the test read
    # it without bob's credentials).
    acl = [make_digest_acl("bob", "pw", all=True), make_acl("world", "anyone", read=True, admin=True)]
    zk.set_acls(prefix, acl)
    acked[0]["acl"] = acl_json(acl)
    return acked


for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "write":
        try:
            print(json.dumps({"acked": write(arg)}), flush=True)
        except Exception as e:  # the test fails on it, with the reason
            print(json.dumps({"error": repr(e)}), flush=True)
    elif cmd == "switched":
        r = KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5, deadline=60)
        stat = r(zk.exists, root + "/eph")
        data, _ = r(zk.get, root + "/eph")
        print(json.dumps({"resumed": True, "session": hex(zk.client_id[0]),
                          "owner": hex(stat.ephemeralOwner) if stat else None,
                          "data": data.decode(), "states": states}), flush=True)
    elif cmd == "stop":
        break
zk.stop()
zk.close()
