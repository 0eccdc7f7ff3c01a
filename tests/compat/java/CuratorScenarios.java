import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.api.transaction.OperationType;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.SharedCountListener;
import org.apache.curator.framework.recipes.shared.SharedCountReader;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.data.Stat;

/**
 * Curator 5.4 recipes run against a ZooKeeper-compatible server, one scenario at a time.
 *
 * Usage: java CuratorScenarios CONNECT_STRING SCENARIO... (or "all").
 *
 * Every scenario checks what the recipe promises (mutual exclusion, a single leader, events seen,
 * ...) and prints one JSON line {"scenario":..., "ok":..., "details":{...}} or, on failure,
 * {"scenario":..., "ok":false, "error":...}. The exit status is non-zero when any scenario failed.
 * The waits below are only bounds that keep a broken server from hanging the run: nothing here
 * asserts how long anything takes.
 */
public final class CuratorScenarios {
    static final long WAIT_MS = 20_000;
    static final long SCENARIO_TIMEOUT_S = 90;

    final String connectString;
    final List<CuratorFramework> clients = new CopyOnWriteArrayList<>();
    final List<AutoCloseable> closeables = new CopyOnWriteArrayList<>();

    CuratorScenarios(String connectString) {
        this.connectString = connectString;
    }

    interface Scenario {
        Map<String, Object> run(CuratorScenarios s) throws Exception;
    }

    static final Map<String, Scenario> SCENARIOS = new LinkedHashMap<>();
    static {
        SCENARIOS.put("mutex", CuratorScenarios::mutex);
        SCENARIOS.put("leader_latch", CuratorScenarios::leaderLatch);
        SCENARIOS.put("leader_selector", CuratorScenarios::leaderSelector);
        SCENARIOS.put("curator_cache", CuratorScenarios::curatorCache);
        SCENARIOS.put("persistent_node", CuratorScenarios::persistentNode);
        SCENARIOS.put("service_discovery", CuratorScenarios::serviceDiscovery);
        SCENARIOS.put("atomic_long", CuratorScenarios::atomicLong);
        SCENARIOS.put("shared_count", CuratorScenarios::sharedCount);
        SCENARIOS.put("transactions", CuratorScenarios::transactions);
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: CuratorScenarios CONNECT_STRING SCENARIO...|all; scenarios: "
                    + SCENARIOS.keySet());
            System.exit(2);
        }
        List<String> names = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            if (args[i].equals("all")) {
                names.addAll(SCENARIOS.keySet());
            } else if (SCENARIOS.containsKey(args[i])) {
                names.add(args[i]);
            } else {
                System.err.println("unknown scenario " + args[i] + "; scenarios: " + SCENARIOS.keySet());
                System.exit(2);
            }
        }
        int failures = 0;
        for (String name : names) {
            if (!runOne(args[0], name)) {
                failures++;
            }
        }
        System.out.flush();
        // Halt rather than return: a broken server can leave Curator threads that never stop.
        Runtime.getRuntime().halt(failures == 0 ? 0 : 1);
    }

    static boolean runOne(String connectString, String name) {
        CuratorScenarios s = new CuratorScenarios(connectString);
        ExecutorService executor = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "scenario-" + name);
            t.setDaemon(true);
            return t;
        });
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("scenario", name);
        try {
            Future<Map<String, Object>> future = executor.submit(() -> SCENARIOS.get(name).run(s));
            Map<String, Object> details = future.get(SCENARIO_TIMEOUT_S, TimeUnit.SECONDS);
            line.put("ok", true);
            line.put("details", details);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            line.put("ok", false);
            line.put("error", describe(cause));
            System.err.println("scenario " + name + " FAILED: " + describe(cause));
            cause.printStackTrace();
        } catch (TimeoutException e) {
            line.put("ok", false);
            line.put("error", "scenario did not finish within " + SCENARIO_TIMEOUT_S + "s (hung?)");
            System.err.println("scenario " + name + " FAILED: timed out");
        } catch (Throwable e) {
            line.put("ok", false);
            line.put("error", describe(e));
        } finally {
            executor.shutdownNow();
            s.closeAll();
        }
        System.out.println(toJson(line));
        System.out.flush();
        return Boolean.TRUE.equals(line.get("ok"));
    }

    static String describe(Throwable t) {
        return t.getClass().getSimpleName() + ": " + t.getMessage();
    }

    // ------------------------------------------------------------------ helpers

    CuratorFramework newClient() throws Exception {
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(connectString)
                .sessionTimeoutMs(30_000)
                .connectionTimeoutMs(15_000)
                .retryPolicy(new RetryNTimes(5, 200))
                .build();
        clients.add(client);
        client.start();
        if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
            throw new AssertionError("Curator client did not connect to " + connectString);
        }
        return client;
    }

    <T extends AutoCloseable> T track(T closeable) {
        closeables.add(closeable);
        return closeable;
    }

    void closeAll() {
        List<AutoCloseable> reversed = new ArrayList<>(closeables);
        Collections.reverse(reversed);
        for (AutoCloseable c : reversed) {
            closeQuietly(c);
        }
        for (CuratorFramework client : clients) {
            closeQuietly(client);
        }
    }

    static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Throwable ignored) {
            // already closed, or the server is gone
        }
    }

    static void waitFor(String what, BooleanSupplier condition) throws InterruptedException {
        waitFor(what, WAIT_MS, condition);
    }

    static void waitFor(String what, long waitMs, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(waitMs);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("gave up waiting for " + what);
            }
            Thread.sleep(20);
        }
    }

    static void check(boolean condition, String message) {
        if (!condition) {
            throw new AssertionError(message);
        }
    }

    static void checkEquals(Object expected, Object actual, String what) {
        if (expected == null ? actual != null : !expected.equals(actual)) {
            throw new AssertionError(what + ": expected " + expected + " but got " + actual);
        }
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String str(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    static long sequenceOf(String path) {
        return Long.parseLong(path.substring(path.length() - 10));
    }

    static long sessionId(CuratorFramework client) throws Exception {
        return client.getZookeeperClient().getZooKeeper().getSessionId();
    }

    static <T> List<T> runThreads(int n, java.util.function.IntFunction<java.util.concurrent.Callable<T>> body)
            throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                futures.add(pool.submit(body.apply(i)));
            }
            List<T> results = new ArrayList<>();
            for (Future<T> f : futures) {
                try {
                    results.add(f.get(SCENARIO_TIMEOUT_S, TimeUnit.SECONDS));
                } catch (ExecutionException e) {
                    if (e.getCause() instanceof Exception) {
                        throw (Exception) e.getCause();
                    }
                    throw new RuntimeException(e.getCause());
                }
            }
            return results;
        } finally {
            pool.shutdownNow();
        }
    }

    // ------------------------------------------------------------------ scenarios

    /**
     * Several clients (one session each) contend for one InterProcessMutex. Inside the lock each
     * does an unsafe read-modify-write of a znode counter; the in-process holder count must never
     * exceed one, the counter must end at clients*rounds, and the fencing token (the sequence
     * number of the holder's lock node) must increase with every acquisition.
     */
    static Map<String, Object> mutex(CuratorScenarios s) throws Exception {
        final int clientsN = 4;
        final int rounds = 5;
        final String lockPath = "/scenarios/mutex/lock";
        final String counterPath = "/scenarios/mutex/counter";
        CuratorFramework setup = s.newClient();
        setup.create().creatingParentsIfNeeded().forPath(counterPath, bytes("0"));
        final AtomicInteger holders = new AtomicInteger();
        final AtomicInteger maxHolders = new AtomicInteger();
        final List<Long> tokens = Collections.synchronizedList(new ArrayList<>());
        final List<String> ownerProblems = new CopyOnWriteArrayList<>();
        List<CuratorFramework> clients = new ArrayList<>();
        for (int i = 0; i < clientsN; i++) {
            clients.add(s.newClient());
        }
        runThreads(clientsN, i -> () -> {
            CuratorFramework client = clients.get(i);
            InterProcessMutex mutex = new InterProcessMutex(client, lockPath);
            for (int r = 0; r < rounds; r++) {
                if (!mutex.acquire(WAIT_MS, TimeUnit.MILLISECONDS)) {
                    throw new AssertionError("client " + i + " could not acquire the lock");
                }
                try {
                    int now = holders.incrementAndGet();
                    maxHolders.accumulateAndGet(now, Math::max);
                    // Reentrancy: the same thread may take it again.
                    check(mutex.acquire(WAIT_MS, TimeUnit.MILLISECONDS), "reentrant acquire failed");
                    mutex.release();
                    check(mutex.isOwnedByCurrentThread(), "lost ownership after a reentrant release");
                    List<String> participants = new ArrayList<>(mutex.getParticipantNodes());
                    check(!participants.isEmpty(), "no participant nodes while holding the lock");
                    String holderNode = participants.get(0);
                    tokens.add(sequenceOf(holderNode));
                    Stat stat = client.checkExists().forPath(holderNode);
                    if (stat == null || stat.getEphemeralOwner() != sessionId(client)) {
                        ownerProblems.add(holderNode + " owner " + (stat == null ? "none"
                                : Long.toHexString(stat.getEphemeralOwner())));
                    }
                    int value = Integer.parseInt(str(client.getData().forPath(counterPath)));
                    Thread.sleep(2);
                    client.setData().forPath(counterPath, bytes(Integer.toString(value + 1)));
                    holders.decrementAndGet();
                } finally {
                    mutex.release();
                }
            }
            return null;
        });
        int counter = Integer.parseInt(str(setup.getData().forPath(counterPath)));
        checkEquals(1, maxHolders.get(), "most simultaneous holders");
        checkEquals(clientsN * rounds, counter, "counter updated under the lock");
        check(ownerProblems.isEmpty(), "lock nodes not owned by the holder's session: " + ownerProblems);
        for (int i = 1; i < tokens.size(); i++) {
            check(tokens.get(i) > tokens.get(i - 1), "fencing tokens not increasing: " + tokens);
        }
        List<String> left = setup.getChildren().forPath(lockPath);
        check(left.isEmpty(), "lock nodes left after every release: " + left);
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("acquisitions", tokens.size());
        d.put("counter", counter);
        d.put("max_holders", maxHolders.get());
        d.put("tokens_increasing", true);
        return d;
    }

    /** Three LeaderLatches: one leader; closing its latch, then its whole session, moves leadership. */
    static Map<String, Object> leaderLatch(CuratorScenarios s) throws Exception {
        final String path = "/scenarios/latch";
        final int n = 3;
        List<CuratorFramework> clients = new ArrayList<>();
        List<LeaderLatch> latches = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            CuratorFramework client = s.newClient();
            clients.add(client);
            LeaderLatch latch = s.track(new LeaderLatch(client, path, "p" + i));
            latches.add(latch);
            latch.start();
        }
        List<String> leaders = new ArrayList<>();
        List<Integer> open = new ArrayList<>(Arrays.asList(0, 1, 2));

        int first = awaitSingleLeader(latches, open);
        leaders.add("p" + first);
        checkEquals("p" + first, latches.get(open.get(0)).getLeader().getId(), "leader reported by a participant");
        check(latches.get(first).getOurPath() != null, "leader has no latch node");
        // Failover 1: the leader closes its latch (its node is deleted).
        latches.get(first).close();
        open.remove(Integer.valueOf(first));
        int second = awaitSingleLeader(latches, open);
        check(second != first, "leadership did not move after the leader closed its latch");
        leaders.add("p" + second);
        // Failover 2: the new leader's whole session goes away (its ephemeral node with it).
        // If the close cannot reach the ensemble (a test may kill the leader at this moment), the
        // session ends by expiry instead, so this wait allows the negotiated timeout on top.
        long sessionTimeoutMs = clients.get(second).getZookeeperClient().getZooKeeper().getSessionTimeout();
        clients.get(second).close();
        open.remove(Integer.valueOf(second));
        int third = awaitSingleLeader(latches, open, WAIT_MS + sessionTimeoutMs);
        check(third != second && third != first, "leadership did not move after the leader's session closed");
        leaders.add("p" + third);
        final int last = third;
        waitFor("the remaining participant to see itself as leader",
                () -> { try { return latches.get(last).getLeader().getId().equals("p" + last); }
                        catch (Exception e) { return false; } });
        Collection<?> participants = latches.get(third).getParticipants();
        checkEquals(1, participants.size(), "participants left");
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("leaders", leaders);
        return d;
    }

    static int awaitSingleLeader(List<LeaderLatch> latches, List<Integer> candidates) throws InterruptedException {
        return awaitSingleLeader(latches, candidates, WAIT_MS);
    }

    static int awaitSingleLeader(List<LeaderLatch> latches, List<Integer> candidates, long waitMs)
            throws InterruptedException {
        AtomicInteger leader = new AtomicInteger(-1);
        waitFor("exactly one leader among " + candidates, waitMs, () -> {
            int count = 0;
            for (int i : candidates) {
                if (latches.get(i).hasLeadership()) {
                    count++;
                    leader.set(i);
                }
            }
            return count == 1;
        });
        return leader.get();
    }

    /**
     * Three LeaderSelectors: the leader relinquishes by returning from takeLeadership, the next one
     * is closed while leading; each time another participant takes over, never two at once.
     */
    static Map<String, Object> leaderSelector(CuratorScenarios s) throws Exception {
        final String path = "/scenarios/selector";
        final int n = 3;
        final AtomicReference<String> current = new AtomicReference<>();
        final List<String> violations = new CopyOnWriteArrayList<>();
        final List<String> order = new CopyOnWriteArrayList<>();
        final List<CountDownLatch> release = new ArrayList<>();
        final List<LeaderSelector> selectors = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            release.add(new CountDownLatch(1));
        }
        for (int i = 0; i < n; i++) {
            final String id = "s" + i;
            final CountDownLatch mine = release.get(i);
            CuratorFramework client = s.newClient();
            LeaderSelector selector = new LeaderSelector(client, path, new LeaderSelectorListenerAdapter() {
                @Override
                public void takeLeadership(CuratorFramework c) throws Exception {
                    if (!current.compareAndSet(null, id)) {
                        violations.add(id + " became leader while " + current.get() + " was");
                    }
                    order.add(id);
                    try {
                        mine.await();
                    } finally {
                        current.compareAndSet(id, null);
                    }
                }
            });
            selector.setId(id);
            selectors.add(s.track(selector));
        }
        for (LeaderSelector selector : selectors) {
            selector.start();
        }
        waitFor("a first leader", () -> order.size() == 1);
        String first = order.get(0);
        int firstIndex = Integer.parseInt(first.substring(1));
        waitFor("participants to register", () -> {
            try { return selectors.get(0).getParticipants().size() == n; } catch (Exception e) { return false; }
        });
        checkEquals(first, selectors.get((firstIndex + 1) % n).getLeader().getId(), "leader seen by another participant");
        // Failover 1: the leader returns from takeLeadership.
        release.get(firstIndex).countDown();
        waitFor("a second leader", () -> order.size() == 2);
        String second = order.get(1);
        int secondIndex = Integer.parseInt(second.substring(1));
        check(!second.equals(first), "the same participant led twice without requeueing");
        // Failover 2: the leader's selector is closed while it leads.
        current.compareAndSet(second, null);
        selectors.get(secondIndex).close();
        waitFor("a third leader", () -> order.size() == 3);
        String third = order.get(2);
        check(!third.equals(first) && !third.equals(second), "unexpected third leader " + third);
        check(violations.isEmpty(), "two leaders at once: " + violations);
        release.get(Integer.parseInt(third.substring(1))).countDown();
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("leaders", new ArrayList<>(order));
        return d;
    }

    /** CuratorCache sees the initial tree, then each create, update and delete made by another client. */
    static Map<String, Object> curatorCache(CuratorScenarios s) throws Exception {
        final String root = "/scenarios/cache";
        CuratorFramework watcher = s.newClient();
        CuratorFramework writer = s.newClient();
        writer.create().creatingParentsIfNeeded().forPath(root, bytes("root"));
        writer.create().forPath(root + "/pre", bytes("p"));
        final List<String> events = new CopyOnWriteArrayList<>();
        final CountDownLatch initialized = new CountDownLatch(1);
        CuratorCache cache = s.track(CuratorCache.build(watcher, root));
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forCreates(node -> events.add("CREATED " + node.getPath() + " " + str(node.getData())))
                .forChanges((old, node) -> events.add("CHANGED " + node.getPath() + " " + str(old.getData())
                        + "->" + str(node.getData())))
                .forDeletes(old -> events.add("DELETED " + old.getPath()))
                .forInitialized(initialized::countDown)
                .build());
        cache.start();
        check(initialized.await(WAIT_MS, TimeUnit.MILLISECONDS), "CuratorCache never initialized");
        List<String> initial = new ArrayList<>(new TreeSet<>(events));
        checkEquals(Arrays.asList("CREATED " + root + " root", "CREATED " + root + "/pre p"), initial,
                "initial events");
        String[][] steps = {
                {"create", root + "/a", "1", "CREATED " + root + "/a 1"},
                {"set", root + "/a", "2", "CHANGED " + root + "/a 1->2"},
                {"create", root + "/a/b", "x", "CREATED " + root + "/a/b x"},
                {"set", root, "root2", "CHANGED " + root + " root->root2"},
                {"delete", root + "/a/b", null, "DELETED " + root + "/a/b"},
                {"delete", root + "/a", null, "DELETED " + root + "/a"},
                {"delete", root + "/pre", null, "DELETED " + root + "/pre"},
        };
        for (String[] step : steps) {
            int before = events.size();
            switch (step[0]) {
                case "create": writer.create().forPath(step[1], bytes(step[2])); break;
                case "set": writer.setData().forPath(step[1], bytes(step[2])); break;
                default: writer.delete().forPath(step[1]); break;
            }
            waitFor("event '" + step[3] + "'", () -> events.size() > before);
            checkEquals(step[3], events.get(before), "event after " + step[0] + " " + step[1]);
        }
        check(!cache.get(root + "/a").isPresent(), "deleted node still cached");
        checkEquals("root2", str(cache.get(root).get().getData()), "cached root data");
        checkEquals(1, cache.size(), "cache size at the end");
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("events", new ArrayList<>(events.subList(initial.size(), events.size())));
        return d;
    }

    /** An ephemeral PersistentNode is recreated after someone deletes it, and goes when closed. */
    static Map<String, Object> persistentNode(CuratorScenarios s) throws Exception {
        final String path = "/scenarios/pnode/member";
        CuratorFramework owner = s.newClient();
        CuratorFramework other = s.newClient();
        PersistentNode node = s.track(new PersistentNode(owner, CreateMode.EPHEMERAL, false, path, bytes("v1")));
        node.start();
        check(node.waitForInitialCreate(WAIT_MS, TimeUnit.MILLISECONDS), "PersistentNode not created");
        checkEquals(path, node.getActualPath(), "actual path");
        Stat stat = other.checkExists().forPath(path);
        check(stat != null, "node missing after the initial create");
        checkEquals(sessionId(owner), stat.getEphemeralOwner(), "ephemeral owner");
        long firstCzxid = stat.getCzxid();
        int recreated = 0;
        for (int i = 0; i < 2; i++) {
            other.delete().forPath(path);
            final long previous = firstCzxid;
            waitFor("the node to be recreated", () -> {
                try {
                    Stat st = other.checkExists().forPath(path);
                    return st != null && st.getCzxid() != previous;
                } catch (Exception e) { return false; }
            });
            Stat again = other.checkExists().forPath(path);
            check(again.getCzxid() > firstCzxid, "recreated node has an older czxid");
            checkEquals(sessionId(owner), again.getEphemeralOwner(), "owner after recreation");
            firstCzxid = again.getCzxid();
            recreated++;
        }
        checkEquals("v1", str(other.getData().forPath(path)), "data after recreation");
        node.setData(bytes("v2"));
        waitFor("setData to reach the server", () -> {
            try { return "v2".equals(str(other.getData().forPath(path))); } catch (Exception e) { return false; }
        });
        // Another session closing does not disturb it.
        other.close();
        CuratorFramework third = s.newClient();
        check(third.checkExists().forPath(path) != null, "node vanished when an unrelated session closed");
        node.close();
        waitFor("the node to go after close()", () -> {
            try { return third.checkExists().forPath(path) == null; } catch (Exception e) { return false; }
        });
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("recreated", recreated);
        d.put("data", "v2");
        return d;
    }

    /** Two services register from two sessions; a third queries them; one session closes and its instance goes. */
    static Map<String, Object> serviceDiscovery(CuratorScenarios s) throws Exception {
        final String base = "/scenarios/services";
        CuratorFramework c1 = s.newClient();
        CuratorFramework c2 = s.newClient();
        CuratorFramework c3 = s.newClient();
        ServiceInstance<String> web1 = ServiceInstance.<String>builder().name("web").id("web-1")
                .address("127.0.0.1").port(8081).payload("one").build();
        ServiceInstance<String> web2 = ServiceInstance.<String>builder().name("web").id("web-2")
                .address("127.0.0.1").port(8082).payload("two").build();
        ServiceInstance<String> db = ServiceInstance.<String>builder().name("db").id("db-1")
                .address("127.0.0.1").port(5432).payload("db").build();
        ServiceDiscovery<String> d1 = s.track(ServiceDiscoveryBuilder.builder(String.class).client(c1)
                .basePath(base).thisInstance(web1).build());
        ServiceDiscovery<String> d2 = ServiceDiscoveryBuilder.builder(String.class).client(c2)
                .basePath(base).thisInstance(web2).build();
        d1.start();
        d2.start();
        d2.registerService(db);
        ServiceDiscovery<String> query = s.track(ServiceDiscoveryBuilder.builder(String.class).client(c3)
                .basePath(base).build());
        query.start();
        checkEquals(new TreeSet<>(Arrays.asList("db", "web")), new TreeSet<>(query.queryForNames()), "service names");
        checkEquals(new TreeSet<>(Arrays.asList("web-1", "web-2")), ids(query.queryForInstances("web")), "web instances");
        ServiceInstance<String> found = query.queryForInstance("web", "web-2");
        check(found != null, "web-2 not found by id");
        checkEquals("two", found.getPayload(), "payload of web-2");
        checkEquals(8082, found.getPort(), "port of web-2");
        ServiceCache<String> cache = s.track(query.serviceCacheBuilder().name("web").build());
        cache.start();
        waitFor("the service cache to see both instances", () -> cache.getInstances().size() == 2);
        // The second client's session ends without unregistering: its ephemeral instances vanish.
        c2.close();
        waitFor("web-2 to vanish from queries", () -> {
            try { return ids(query.queryForInstances("web")).equals(new TreeSet<>(Arrays.asList("web-1"))); }
            catch (Exception e) { return false; }
        });
        waitFor("the service cache to drop web-2", () -> cache.getInstances().size() == 1);
        checkEquals(new TreeSet<String>(), ids(query.queryForInstances("db")), "db instances after its session closed");
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("remaining", new ArrayList<>(ids(query.queryForInstances("web"))));
        return d;
    }

    static Set<String> ids(Collection<ServiceInstance<String>> instances) {
        Set<String> ids = new TreeSet<>();
        for (ServiceInstance<String> i : instances) {
            ids.add(i.getId());
        }
        return ids;
    }

    /** Concurrent increments of a DistributedAtomicLong from several sessions add up, each seen once. */
    static Map<String, Object> atomicLong(CuratorScenarios s) throws Exception {
        final String path = "/scenarios/atomic";
        final int n = 4;
        final int each = 25;
        List<CuratorFramework> clients = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            clients.add(s.newClient());
        }
        final Set<Long> seen = ConcurrentHashMap.newKeySet();
        final AtomicInteger retries = new AtomicInteger();
        runThreads(n, i -> () -> {
            DistributedAtomicLong counter = new DistributedAtomicLong(clients.get(i), path, new RetryNTimes(50, 1));
            for (int k = 0; k < each; k++) {
                for (int attempt = 0; ; attempt++) {
                    check(attempt < 1000, "increment never succeeded");
                    AtomicValue<Long> v = counter.increment();
                    if (v.succeeded()) {
                        check(v.postValue() == v.preValue() + 1, "post != pre + 1: " + v.preValue() + " " + v.postValue());
                        check(seen.add(v.postValue()), "value " + v.postValue() + " produced twice");
                        break;
                    }
                    retries.incrementAndGet();
                }
            }
            return null;
        });
        DistributedAtomicLong reader = new DistributedAtomicLong(clients.get(0), path, new RetryNTimes(3, 10));
        AtomicValue<Long> value = reader.get();
        check(value.succeeded(), "get failed");
        checkEquals((long) n * each, value.postValue(), "final value");
        checkEquals((long) n * each, (long) seen.size(), "distinct post-values");
        // compareAndSet with a stale expectation fails; with the right one succeeds.
        check(!reader.compareAndSet(0L, 7L).succeeded(), "compareAndSet with a stale value succeeded");
        check(reader.compareAndSet((long) n * each, 7L).succeeded(), "compareAndSet with the current value failed");
        checkEquals(7L, reader.get().postValue(), "value after compareAndSet");
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("final", n * each);
        return d;
    }

    /** SharedCount: versioned sets (a stale version loses), listeners, and concurrent trySetCount loops. */
    static Map<String, Object> sharedCount(CuratorScenarios s) throws Exception {
        final String path = "/scenarios/shared";
        final int n = 3;
        final int each = 10;
        List<SharedCount> counts = new ArrayList<>();
        final List<List<Integer>> heard = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            SharedCount count = s.track(new SharedCount(s.newClient(), path, 0));
            final List<Integer> mine = new CopyOnWriteArrayList<>();
            heard.add(mine);
            count.addListener(new SharedCountListener() {
                @Override
                public void countHasChanged(SharedCountReader reader, int newCount) {
                    mine.add(newCount);
                }

                @Override
                public void stateChanged(CuratorFramework client, ConnectionState state) {
                }
            });
            count.start();
            counts.add(count);
        }
        SharedCount a = counts.get(0);
        SharedCount b = counts.get(1);
        VersionedValue<Integer> stale = b.getVersionedValue();
        checkEquals(0, stale.getValue(), "initial count");
        check(a.trySetCount(a.getVersionedValue(), 5), "trySetCount with the current version failed");
        check(!b.trySetCount(stale, 7), "trySetCount with a stale version succeeded");
        waitFor("every participant to see 5", () -> counts.stream().allMatch(c -> c.getCount() == 5));
        b.setCount(10);
        waitFor("every participant to see 10", () -> counts.stream().allMatch(c -> c.getCount() == 10));
        for (int i = 0; i < n; i++) {
            if (i != 1) {
                final List<Integer> mine = heard.get(i);
                waitFor("listener " + i + " to hear 10", () -> mine.contains(10));
            }
        }
        final AtomicInteger conflicts = new AtomicInteger();
        runThreads(n, i -> () -> {
            SharedCount c = counts.get(i);
            for (int k = 0; k < each; k++) {
                for (int attempt = 0; ; attempt++) {
                    check(attempt < 10_000, "trySetCount never succeeded");
                    VersionedValue<Integer> v = c.getVersionedValue();
                    if (c.trySetCount(v, v.getValue() + 1)) {
                        break;
                    }
                    conflicts.incrementAndGet();
                    Thread.sleep(1);
                }
            }
            return null;
        });
        final int expected = 10 + n * each;
        waitFor("every participant to see " + expected, () -> counts.stream().allMatch(c -> c.getCount() == expected));
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("final", expected);
        return d;
    }

    /** CuratorFramework.transaction(): a successful multi, then failing ones that change nothing. */
    static Map<String, Object> transactions(CuratorScenarios s) throws Exception {
        final String root = "/scenarios/tx";
        CuratorFramework client = s.newClient();
        client.create().creatingParentsIfNeeded().forPath(root + "/base", bytes("v0"));
        client.create().forPath(root + "/old", bytes("old"));
        List<CuratorOp> ops = Arrays.asList(
                client.transactionOp().create().forPath(root + "/a", bytes("A")),
                client.transactionOp().create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(root + "/seq-", bytes("S")),
                client.transactionOp().setData().forPath(root + "/base", bytes("v1")),
                client.transactionOp().delete().forPath(root + "/old"),
                client.transactionOp().check().withVersion(1).forPath(root + "/base"));
        List<CuratorTransactionResult> results = client.transaction().forOperations(ops);
        checkEquals(5, results.size(), "number of results");
        List<String> described = new ArrayList<>();
        for (CuratorTransactionResult r : results) {
            described.add(r.getType() + " " + r.getForPath() + " -> " + r.getResultPath()
                    + (r.getResultStat() != null ? " version=" + r.getResultStat().getVersion() : ""));
            checkEquals(0, r.getError(), "error code of " + r.getType() + " " + r.getForPath());
        }
        checkEquals(OperationType.CREATE, results.get(0).getType(), "first result type");
        checkEquals(root + "/a", results.get(0).getResultPath(), "created path");
        // /tx had base and old as children (cversion 2), then /a (3): the sequential node gets 3.
        checkEquals(root + "/seq-0000000003", results.get(1).getResultPath(), "sequential path in a transaction");
        checkEquals(1, results.get(2).getResultStat().getVersion(), "version after setData in a transaction");
        check(client.checkExists().forPath(root + "/old") == null, "deleted node still exists");
        checkEquals("v1", str(client.getData().forPath(root + "/base")), "data after the transaction");

        Stat before = client.checkExists().forPath(root);
        // A transaction whose third operation fails (no such node) changes nothing.
        List<Integer> codes = new ArrayList<>();
        String failure = null;
        try {
            client.transaction().forOperations(
                    client.transactionOp().create().forPath(root + "/b", bytes("B")),
                    client.transactionOp().setData().forPath(root + "/base", bytes("v2")),
                    client.transactionOp().delete().forPath(root + "/missing"),
                    client.transactionOp().create().forPath(root + "/c", bytes("C")));
            throw new AssertionError("a transaction deleting a missing node succeeded");
        } catch (KeeperException e) {
            failure = e.code().name();
            if (e.getResults() != null) {
                for (OpResult r : e.getResults()) {
                    codes.add(r instanceof OpResult.ErrorResult ? ((OpResult.ErrorResult) r).getErr() : 0);
                }
            }
        }
        checkEquals("NONODE", failure, "failure of the bad transaction");
        checkEquals(Arrays.asList(0, 0, KeeperException.Code.NONODE.intValue(),
                KeeperException.Code.RUNTIMEINCONSISTENCY.intValue()), codes, "per-operation results of the failed multi");
        check(client.checkExists().forPath(root + "/b") == null, "create before the failure was not rolled back");
        check(client.checkExists().forPath(root + "/c") == null, "create after the failure was applied");
        checkEquals("v1", str(client.getData().forPath(root + "/base")), "setData before the failure was not rolled back");
        Stat after = client.checkExists().forPath(root);
        checkEquals(before.getCversion(), after.getCversion(), "parent cversion after a failed transaction");
        checkEquals(before.getPzxid(), after.getPzxid(), "parent pzxid after a failed transaction");

        // A version check that fails aborts the transaction too.
        String checkFailure = null;
        try {
            client.transaction().forOperations(
                    client.transactionOp().create().forPath(root + "/d", bytes("D")),
                    client.transactionOp().check().withVersion(99).forPath(root + "/base"));
            throw new AssertionError("a transaction with a failing version check succeeded");
        } catch (KeeperException e) {
            checkFailure = e.code().name();
        }
        checkEquals("BADVERSION", checkFailure, "failure of the version check");
        check(client.checkExists().forPath(root + "/d") == null, "create before a failed check was applied");
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("results", described);
        d.put("failed_codes", codes);
        return d;
    }

    // ------------------------------------------------------------------ JSON

    static String toJson(Object value) {
        StringBuilder sb = new StringBuilder();
        writeJson(sb, value);
        return sb.toString();
    }

    static void writeJson(StringBuilder sb, Object value) {
        if (value == null) {
            sb.append("null");
        } else if (value instanceof Boolean || value instanceof Number) {
            sb.append(value);
        } else if (value instanceof Map) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                if (!first) sb.append(',');
                first = false;
                writeJson(sb, String.valueOf(e.getKey()));
                sb.append(':');
                writeJson(sb, e.getValue());
            }
            sb.append('}');
        } else if (value instanceof Collection) {
            sb.append('[');
            boolean first = true;
            for (Object o : (Collection<?>) value) {
                if (!first) sb.append(',');
                first = false;
                writeJson(sb, o);
            }
            sb.append(']');
        } else {
            String s = value.toString();
            sb.append('"');
            for (char c : s.toCharArray()) {
                switch (c) {
                    case '"': sb.append("\\\""); break;
                    case '\\': sb.append("\\\\"); break;
                    case '\n': sb.append("\\n"); break;
                    case '\r': sb.append("\\r"); break;
                    case '\t': sb.append("\\t"); break;
                    default:
                        if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                        else sb.append(c);
                }
            }
            sb.append('"');
        }
    }
}
