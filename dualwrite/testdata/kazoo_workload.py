#!/usr/bin/python3
"""A deterministic kazoo workload for the dualwrite tests.

    /usr/bin/python3 kazoo_workload.py --hosts HOST:PORT[,HOST:PORT] --root /kz

Runs, through kazoo (Debian's python3-kazoo, `make deps`), every kind of write
kazoo can issue under --root, which must not exist or be empty: creates of
every mode kazoo offers (Create and, with include_data, Create2), binary,
empty and None data, digest, auth and world ACLs, sets and deletes with
version checks, set_acls, one committed and one failed transaction, nested
paths, writes that must fail (bad version, node exists, no node, not empty,
no children for ephemerals, no auth), then closes the session so that
ZooKeeper deletes its ephemerals, and checks from a second session that they
are gone and that the tree under --root is exactly the one expected.

kazoo 2.8 (Debian 12) creates neither container nor TTL nodes; when a newer
kazoo offers them (a `container` or `ttl` argument to create) they are
created too.

The last line of stdout is one JSON object: the counts of writes that
succeeded and failed as expected, and the nodes left under --root. The exit
status is non-zero on any unexpected outcome, which is described on stderr.
Always run it with Debian's /usr/bin/python3: a python3 found on PATH (pyenv,
virtualenv) does not see Debian's packages.
"""

import argparse
import inspect
import json
import logging
import random
import sys

try:
    from kazoo.client import KazooClient
    from kazoo.exceptions import (
        BadArgumentsError,
        BadVersionError,
        NoAuthError,
        NoChildrenForEphemeralsError,
        NodeExistsError,
        NoNodeError,
        NotEmptyError,
        RolledBackError,
    )
    from kazoo.security import OPEN_ACL_UNSAFE, make_acl, make_digest_acl
    from kazoo.version import __version__ as KAZOO_VERSION
except ImportError as exc:  # pragma: no cover - exercised on machines without kazoo
    sys.stderr.write(
        "kazoo_workload: kazoo is not importable by %s (%s): install Debian's "
        "python3-kazoo with `make deps` and run the script with /usr/bin/python3\n"
        % (sys.executable, exc)
    )
    sys.exit(3)

# The digest identity that owns every protected node; checks that read the
# whole tree need `digest` auth with USER:PASSWORD.
USER, PASSWORD = "kazoo", "kazoo-secret"
# TTL nodes outlive any test by far, so ZooKeeper's reaper never races a check.
TTL_MS = 24 * 3600 * 1000


class Unexpected(Exception):
    """An operation did not end the way the workload expected."""


class Workload:
    def __init__(self, client, root, rng):
        self.zk = client
        self.root = root
        self.rng = rng
        self.ok = 0  # writes that succeeded, as expected
        self.failed = 0  # writes that failed, as expected
        self.by_op = {}
        self.expected = {}  # path -> data of every node expected after close
        self.ephemerals = []

    def p(self, *parts):
        return "/".join((self.root,) + parts)

    def count(self, name):
        self.by_op[name] = self.by_op.get(name, 0) + 1

    def write(self, name, fn, *args, **kwargs):
        """Runs a write that must succeed and returns its result."""
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            raise Unexpected("%s%r: %s: %s" % (name, args, type(exc).__name__, exc))
        self.ok += 1
        self.count(name)
        return result

    def fail(self, name, exc_type, fn, *args, **kwargs):
        """Runs a write that must fail with exc_type."""
        try:
            result = fn(*args, **kwargs)
        except exc_type:
            self.failed += 1
            self.count(name)
            return
        except Exception as exc:
            raise Unexpected("%s%r: want %s, got %s: %s" % (name, args, exc_type.__name__, type(exc).__name__, exc))
        raise Unexpected("%s%r: want %s, got success %r" % (name, args, exc_type.__name__, result))

    def create(self, name, path, value=b"", **kwargs):
        """Creates a node that must appear, records what it should hold."""
        result = self.write(name, self.zk.create, path, value, **kwargs)
        real = result[0] if kwargs.get("include_data") else result
        if kwargs.get("ephemeral"):
            self.ephemerals.append(real)
        else:
            self.expected[real] = value
        return real

    def check_data(self, path, want):
        got, _ = self.zk.get(path)
        # ZooKeeper keeps None apart from b""; kazoo reads both back as b"".
        if (got or b"") != (want or b""):
            raise Unexpected("get %s: got %r, want %r" % (path, got[:64], (want or b"")[:64]))


def create_supports(name):
    return name in inspect.signature(KazooClient.create).parameters


def run(args):
    rng = random.Random(args.seed)
    digest = make_digest_acl(USER, PASSWORD, all=True)
    world_read = make_acl("world", "anyone", read=True)
    protected = [digest, world_read]
    # Stored as the digest identity of the creating session, not as sent.
    auth_all = [make_acl("auth", "", all=True), world_read]
    ip_acl = [make_acl("ip", "127.0.0.1", read=True, write=True), digest]

    zk = KazooClient(hosts=args.hosts, timeout=args.timeout, auth_data=[("digest", "%s:%s" % (USER, PASSWORD))])
    zk.start(timeout=args.timeout)
    w = Workload(zk, args.root, rng)
    kz_features = {"container": create_supports("container"), "ttl": create_supports("ttl")}

    # The root: fresh, or left empty by a previous attempt.
    if zk.exists(args.root):
        if zk.get_children(args.root):
            raise Unexpected("root %s exists and is not empty" % args.root)
        w.expected[args.root] = zk.get(args.root)[0]
    else:
        w.create("create-makepath", args.root, b"kazoo-root", makepath=True)

    # Every create mode kazoo has, through Create (opcode 1) and Create2 (15).
    w.create("create-persistent", w.p("persistent"), b"hello")
    w.create("create2-persistent", w.p("create2"), b"create2", include_data=True)
    w.create("create-ephemeral", w.p("ephemeral"), b"ephemeral", ephemeral=True)
    w.create("create2-ephemeral", w.p("ephemeral-create2"), None, ephemeral=True, include_data=True)
    w.create("create-persistent", w.p("seq"))
    for i in range(3):
        w.create("create-sequential", w.p("seq", "n-"), b"seq-%d" % i, sequence=True)
    w.create("create2-sequential", w.p("seq", "n-"), b"seq-create2", sequence=True, include_data=True)
    w.create("create-persistent", w.p("eseq"))
    for i in range(2):
        w.create("create-ephemeral-sequential", w.p("eseq", "e-"), b"eseq-%d" % i, ephemeral=True, sequence=True)
    if kz_features["container"]:
        w.create("create-container", w.p("container"), b"container", container=True)
        w.create("create-persistent", w.p("container", "keep"), b"keeps the container alive")
    if kz_features["ttl"]:
        w.create("create-ttl", w.p("ttl"), b"ttl", ttl=TTL_MS)

    # Data: every byte value, empty, None, a large deterministic blob.
    w.create("create-binary", w.p("binary"), bytes(range(256)))
    w.create("create-empty", w.p("empty"), b"")
    w.create("create-none", w.p("none"), None)
    w.create("create-large", w.p("large"), bytes(rng.getrandbits(8) for _ in range(300 * 1024)))
    w.create("create-unicode-name", w.p("ünïcode-☃"), "snowman ☃".encode("utf-8"))

    # ACLs: digest + world read, the auth scheme, ip.
    w.create("create-acl-digest", w.p("acl"), b"protected", acl=protected)
    w.create("create-acl-auth", w.p("acl-auth"), b"auth scheme", acl=auth_all)
    w.create("create-acl-ip", w.p("acl-ip"), b"ip scheme", acl=ip_acl)

    # Nested paths: makepath creates every missing parent one Create at a time.
    deep = w.p(*["d%02d" % i for i in range(24)])
    w.create("create-makepath", deep, b"deep", makepath=True)
    for i in range(1, 24):
        w.expected[w.p(*["d%02d" % j for j in range(i)])] = b""
    w.write("ensure-path", zk.ensure_path, w.p("ensured", "a", "b"))
    for path in (w.p("ensured"), w.p("ensured", "a"), w.p("ensured", "a", "b")):
        w.expected[path] = b""

    # Sets with version checks, one deliberately stale.
    persistent = w.p("persistent")
    st = w.write("set-version", zk.set, persistent, b"v1", version=0)
    if st.version != 1:
        raise Unexpected("set %s: version %d, want 1" % (persistent, st.version))
    w.fail("set-bad-version", BadVersionError, zk.set, persistent, b"stale", version=0)
    w.write("set-version", zk.set, persistent, b"v2", version=1)
    w.write("set-any-version", zk.set, w.p("binary"), bytes(reversed(range(256))), version=-1)
    w.expected[w.p("binary")] = bytes(reversed(range(256)))
    w.write("set-none", zk.set, w.p("create2"), None)
    w.expected[w.p("create2")] = None
    w.write("set-empty", zk.set, w.p("empty"), b"")
    w.fail("set-no-node", NoNodeError, zk.set, w.p("missing"), b"x")
    w.expected[persistent] = b"v2"

    # ACL changes with version checks.
    w.write("set-acls", zk.set_acls, w.p("persistent"), protected, version=0)
    w.fail("set-acls-bad-version", BadVersionError, zk.set_acls, w.p("persistent"), OPEN_ACL_UNSAFE, version=0)
    w.write("set-acls", zk.set_acls, w.p("acl-ip"), OPEN_ACL_UNSAFE, version=-1)

    # A second session without the digest identity is refused.
    other = KazooClient(hosts=args.hosts, timeout=args.timeout)
    other.start(timeout=args.timeout)
    try:
        w.fail("set-no-auth", NoAuthError, other.set, w.p("acl"), b"intruder")
        w.fail("create-no-auth", NoAuthError, other.create, w.p("acl", "child"), b"intruder")
    finally:
        other.stop()
        other.close()

    # Creates that must fail.
    w.fail("create-exists", NodeExistsError, zk.create, w.p("persistent"), b"again")
    w.fail("create-no-parent", NoNodeError, zk.create, w.p("nowhere", "child"), b"")
    w.fail("create-under-ephemeral", NoChildrenForEphemeralsError, zk.create, w.p("ephemeral", "child"), b"")

    # Deletes with version checks.
    w.create("create-persistent", w.p("victim"), b"to be deleted")
    w.write("set-any-version", zk.set, w.p("victim"), b"version 1")
    w.fail("delete-bad-version", BadVersionError, zk.delete, w.p("victim"), version=0)
    w.write("delete-version", zk.delete, w.p("victim"), version=1)
    del w.expected[w.p("victim")]
    w.fail("delete-no-node", NoNodeError, zk.delete, w.p("victim"))
    w.fail("delete-not-empty", NotEmptyError, zk.delete, w.p("seq"))
    w.create("create-persistent", w.p("subtree"), b"")
    w.create("create-persistent", w.p("subtree", "a"), b"a")
    w.create("create-persistent", w.p("subtree", "a", "b"), b"b")
    # kazoo deletes children first, one Delete per node.
    w.write("delete-recursive", zk.delete, w.p("subtree"), recursive=True)
    for path in (w.p("subtree"), w.p("subtree", "a"), w.p("subtree", "a", "b")):
        del w.expected[path]

    # A committed transaction: create + set + delete + check.
    w.create("create-persistent", w.p("txn-victim"), b"doomed")
    acl_version = zk.exists(w.p("acl")).version
    t = zk.transaction()
    t.create(w.p("txn-new"), b"made in a transaction")
    t.create(w.p("txn-seq-"), b"sequential in a transaction", sequence=True)
    t.set_data(w.p("persistent"), b"set in a transaction", version=2)
    t.delete(w.p("txn-victim"))
    t.check(w.p("acl"), acl_version)
    results = w.write("transaction", t.commit)
    if any(isinstance(r, Exception) for r in results) or len(results) != 5:
        raise Unexpected("transaction: results %r" % (results,))
    w.expected[w.p("txn-new")] = b"made in a transaction"
    w.expected[results[1]] = b"sequential in a transaction"
    w.expected[w.p("persistent")] = b"set in a transaction"
    del w.expected[w.p("txn-victim")]

    # A failed transaction: its check fails, so its create must not happen.
    t = zk.transaction()
    t.create(w.p("txn-never"), b"never")
    t.set_data(w.p("persistent"), b"never", version=3)
    t.check(w.p("acl"), acl_version + 7)
    results = t.commit()
    if not (
        len(results) == 3
        and isinstance(results[0], RolledBackError)
        and isinstance(results[1], RolledBackError)
        and isinstance(results[2], BadVersionError)
    ):
        raise Unexpected("failed transaction: results %r" % (results,))
    w.failed += 1
    w.count("transaction-bad-version")
    if zk.exists(w.p("txn-never")):
        raise Unexpected("failed transaction created %s" % w.p("txn-never"))

    # Reads agree with what was written.
    zk.sync(args.root)
    for path, value in sorted(w.expected.items()):
        w.check_data(path, value)
    for path in w.ephemerals:
        if not zk.exists(path):
            raise Unexpected("ephemeral %s missing before close" % path)

    # Closing the session deletes its ephemerals (a closeSession transaction).
    zk.stop()
    zk.close()

    check = KazooClient(hosts=args.hosts, timeout=args.timeout, auth_data=[("digest", "%s:%s" % (USER, PASSWORD))])
    check.start(timeout=args.timeout)
    try:
        check.sync(args.root)
        for path in w.ephemerals:
            if check.exists(path):
                raise Unexpected("ephemeral %s survived its session's close" % path)
        found = walk(check, args.root)
        want = sorted(w.expected)
        if found != want:
            raise Unexpected(
                "tree under %s: unexpected %s, missing %s"
                % (args.root, sorted(set(found) - set(want)), sorted(set(want) - set(found)))
            )
        for path, value in sorted(w.expected.items()):
            got, st = check.get(path)
            if (got or b"") != (value or b""):
                raise Unexpected("after close, get %s: got %r, want %r" % (path, got[:64], (value or b"")[:64]))
            # Clients see 0 as the owner of containers and TTL nodes too.
            if st.ephemeralOwner != 0:
                raise Unexpected("after close, %s has ephemeral owner %#x" % (path, st.ephemeralOwner))
    finally:
        check.stop()
        check.close()

    return {
        "kazoo": KAZOO_VERSION,
        "root": args.root,
        "ok": w.ok,
        "expected_failures": w.failed,
        "ephemerals": len(w.ephemerals),
        "nodes": len(w.expected),
        "container": kz_features["container"],
        "ttl": kz_features["ttl"],
        "by_op": dict(sorted(w.by_op.items())),
    }


def walk(client, root):
    out, stack = [], [root]
    while stack:
        path = stack.pop()
        out.append(path)
        for child in client.get_children(path):
            stack.append(path.rstrip("/") + "/" + child)
    return sorted(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", required=True, help="ZooKeeper connect string, HOST:PORT[,HOST:PORT...]")
    parser.add_argument("--root", required=True, help="absolute path the workload owns")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    parser.add_argument("--timeout", type=float, default=30.0, help="session and connect timeout, seconds")
    args = parser.parse_args()
    if not args.root.startswith("/") or args.root == "/" or args.root.endswith("/"):
        parser.error("--root must be an absolute path other than /")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        summary = run(args)
    except Unexpected as exc:
        sys.stderr.write("kazoo_workload: unexpected: %s\n" % exc)
        return 1
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
