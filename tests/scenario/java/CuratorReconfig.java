import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;

/**
 * Curator's reconfig API against an ensemble: {@code CuratorReconfig <connect> <user:password>
 * <joining|-> <leaving|->}. Prints the configuration Curator reads before and the one the
 * reconfig returns, one line each, and exits non-zero with the exception on failure.
 */
public class CuratorReconfig {
    public static void main(String[] args) throws Exception {
        String connect = args[0];
        byte[] auth = args[1].getBytes(StandardCharsets.UTF_8);
        CuratorFramework client = CuratorFrameworkFactory.builder().connectString(connect)
                .retryPolicy(new ExponentialBackoffRetry(200, 5)).authorization("digest", auth).build();
        client.start();
        try {
            client.blockUntilConnected();
            byte[] before = client.getConfig().forEnsemble();
            System.out.println("before " + new String(before, StandardCharsets.UTF_8).replace('\n', '|'));
            List<String> joining = args[2].equals("-") ? null : Arrays.asList(args[2].split(","));
            List<String> leaving = args[3].equals("-") ? null : Arrays.asList(args[3].split(","));
            byte[] after;
            if (joining != null && leaving != null) {
                after = client.reconfig().joining(joining).leaving(leaving).forEnsemble();
            } else if (joining != null) {
                after = client.reconfig().joining(joining).forEnsemble();
            } else {
                after = client.reconfig().leaving(leaving).forEnsemble();
            }
            System.out.println("after " + new String(after, StandardCharsets.UTF_8).replace('\n', '|'));
        } catch (Exception e) {
            System.out.println("error " + e);
            System.exit(1);
        } finally {
            client.close();
        }
    }
}
