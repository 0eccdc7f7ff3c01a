import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;

/**
 * The Java client for the TLS and SASL scenarios (tests/scenario/test_tls.py, test_sasl.py).
 *
 * <p>{@code java ZkSecurityClient HOST:PORT COMMAND...}; TLS and SASL come from the usual system
 * properties (zookeeper.client.secure, zookeeper.ssl.*, java.security.auth.login.config). Each
 * command prints one line: {@code ok ...} or {@code error COMMAND CODE}; every connection-state
 * event prints {@code event STATE}. Commands: {@code await STATE} (wait for that event),
 * {@code create PATH DATA SCHEME:ID} (one ACL entry with all permissions; {@code auth:} for the
 * connection's own ids), {@code get PATH}, {@code getacl PATH}, {@code whoami} (the ids joined
 * with {@code |}).
 */
public class ZkSecurityClient {
    private static final List<String> seen = Collections.synchronizedList(new ArrayList<>());

    private static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        Watcher watcher = (WatchedEvent event) -> {
            if (event.getType() == Watcher.Event.EventType.None) {
                seen.add(event.getState().name());
                say("event " + event.getState().name());
            }
        };
        ZooKeeper zk = new ZooKeeper(args[0], 20000, watcher);
        try {
            for (int i = 1; i < args.length; i++) {
                String command = args[i];
                try {
                    switch (command) {
                        case "await": {
                            String state = args[++i];
                            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                            while (!seen.contains(state) && System.nanoTime() < deadline) {
                                Thread.sleep(20);
                            }
                            say(seen.contains(state) ? "ok await " + state : "error await timeout");
                            break;
                        }
                        case "create": {
                            String path = args[++i];
                            byte[] data = args[++i].getBytes(StandardCharsets.UTF_8);
                            String spec = args[++i];
                            int colon = spec.indexOf(':');
                            Id id = new Id(spec.substring(0, colon), spec.substring(colon + 1));
                            List<ACL> acl = Collections.singletonList(new ACL(ZooDefs.Perms.ALL, id));
                            zk.create(path, data, acl, CreateMode.PERSISTENT);
                            say("ok create " + path);
                            break;
                        }
                        case "get": {
                            String path = args[++i];
                            byte[] data = zk.getData(path, false, new Stat());
                            say("ok get " + path + " " + new String(data, StandardCharsets.UTF_8));
                            break;
                        }
                        case "getacl": {
                            String path = args[++i];
                            StringBuilder line = new StringBuilder("ok getacl " + path);
                            for (ACL entry : zk.getACL(path, new Stat())) {
                                line.append(" ").append(entry.getId().getScheme()).append(":")
                                    .append(entry.getId().getId());
                            }
                            say(line.toString());
                            break;
                        }
                        case "whoami": {
                            StringBuilder line = new StringBuilder("ok whoami");
                            List<ClientInfo> infos = zk.whoAmI();
                            if (infos == null) {
                                say("error whoami null");
                                break;
                            }
                            String separator = " ";
                            for (ClientInfo info : infos) {
                                line.append(separator).append(info.getAuthScheme()).append(":").append(info.getUser());
                                separator = "|";
                            }
                            say(line.toString());
                            break;
                        }
                        default:
                            say("error unknown-command " + command);
                    }
                } catch (KeeperException e) {
                    say("error " + command + " " + e.code().name());
                } catch (RuntimeException e) {
                    say("error " + command + " " + e.getClass().getSimpleName());
                }
            }
        } finally {
            zk.close();
        }
    }
}
