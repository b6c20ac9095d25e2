// Curator's recipes against a ZooKeeper-protocol server, several competing
// clients each. Usage: CuratorRecipes HOSTS BASE. Prints "ok NAME" per recipe
// and exits 1 on the first failure.
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.CreateMode;

public class CuratorRecipes {
    static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAIL " + what);
            System.out.flush();
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        String hosts = args[0], base = args[1];
        List<CuratorFramework> clients = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            CuratorFramework c = CuratorFrameworkFactory.newClient(hosts, 15000, 10000, new ExponentialBackoffRetry(100, 5));
            c.start();
            check(c.blockUntilConnected(30, TimeUnit.SECONDS), "client " + i + " connected");
            clients.add(c);
        }
        CuratorFramework main = clients.get(0);

        // InterProcessMutex: never two holders (Curator creates its parents as containers, with create2).
        AtomicInteger holders = new AtomicInteger(), maxHolders = new AtomicInteger();
        List<Thread> ts = new ArrayList<>();
        for (CuratorFramework c : clients) {
            ts.add(new Thread(() -> {
                try {
                    InterProcessMutex m = new InterProcessMutex(c, base + "/locks/mutex");
                    for (int k = 0; k < 5; k++) {
                        check(m.acquire(30, TimeUnit.SECONDS), "mutex acquired");
                        int h = holders.incrementAndGet();
                        maxHolders.accumulateAndGet(h, Math::max);
                        Thread.sleep(5);
                        holders.decrementAndGet();
                        m.release();
                    }
                } catch (Exception e) {
                    e.printStackTrace();
                    check(false, "mutex: " + e);
                }
            }));
        }
        for (Thread t : ts) t.start();
        for (Thread t : ts) t.join(120000);
        check(maxHolders.get() == 1, "mutex held by " + maxHolders.get() + " at once");
        System.out.println("ok InterProcessMutex");

        // LeaderLatch: exactly one leader; when it closes, another takes over.
        List<LeaderLatch> latches = new ArrayList<>();
        for (int i = 0; i < clients.size(); i++) {
            LeaderLatch l = new LeaderLatch(clients.get(i), base + "/latch", "c" + i);
            l.start();
            latches.add(l);
        }
        LeaderLatch leader = null;
        long deadline = System.currentTimeMillis() + 30000;
        while (leader == null && System.currentTimeMillis() < deadline) {
            int n = 0;
            for (LeaderLatch l : latches) if (l.hasLeadership()) { n++; leader = l; }
            check(n <= 1, n + " leaders at once");
            if (leader == null) Thread.sleep(20);
        }
        check(leader != null, "a leader was elected");
        leader.close();
        latches.remove(leader);
        LeaderLatch next = null;
        deadline = System.currentTimeMillis() + 30000;
        while (next == null && System.currentTimeMillis() < deadline) {
            for (LeaderLatch l : latches) if (l.hasLeadership()) next = l;
            if (next == null) Thread.sleep(20);
        }
        check(next != null, "leadership moved on");
        for (LeaderLatch l : latches) l.close();
        System.out.println("ok LeaderLatch");

        // CuratorCache (persistent recursive watches) sees another client's changes.
        CountDownLatch created = new CountDownLatch(1), changed = new CountDownLatch(1), deleted = new CountDownLatch(1);
        CuratorCache cache = CuratorCache.build(clients.get(1), base + "/cache");
        cache.listenable().addListener(CuratorCacheListener.builder()
            .forCreates(n -> { if (n.getPath().equals(base + "/cache/a/b")) created.countDown(); })
            .forChanges((o, n) -> { if (n.getPath().equals(base + "/cache/a/b")) changed.countDown(); })
            .forDeletes(o -> { if (o.getPath().equals(base + "/cache/a/b")) deleted.countDown(); })
            .build());
        cache.start();
        main.create().creatingParentContainersIfNeeded().forPath(base + "/cache/a/b", "1".getBytes(StandardCharsets.UTF_8));
        check(created.await(30, TimeUnit.SECONDS), "cache saw the create");
        main.setData().forPath(base + "/cache/a/b", "2".getBytes(StandardCharsets.UTF_8));
        check(changed.await(30, TimeUnit.SECONDS), "cache saw the change");
        main.delete().forPath(base + "/cache/a/b");
        check(deleted.await(30, TimeUnit.SECONDS), "cache saw the delete");
        cache.close();
        System.out.println("ok CuratorCache");

        // PersistentNode: an ephemeral that survives, recreated when deleted.
        PersistentNode pn = new PersistentNode(clients.get(2), CreateMode.EPHEMERAL, false, base + "/members/m2", "me".getBytes(StandardCharsets.UTF_8));
        pn.start();
        check(pn.waitForInitialCreate(30, TimeUnit.SECONDS), "persistent node created");
        main.sync().forPath(base + "/members/m2");
        check(main.checkExists().forPath(base + "/members/m2") != null, "persistent node visible");
        main.delete().forPath(base + "/members/m2");
        deadline = System.currentTimeMillis() + 30000;
        boolean back = false;
        while (!back && System.currentTimeMillis() < deadline) {
            main.sync().forPath(base + "/members");
            back = main.checkExists().forPath(base + "/members/m2") != null;
            if (!back) Thread.sleep(50);
        }
        check(back, "persistent node recreated");
        pn.close();
        System.out.println("ok PersistentNode");

        for (CuratorFramework c : clients) c.close();
        System.out.println("done");
        System.out.flush();
        System.exit(0);
    }
}
