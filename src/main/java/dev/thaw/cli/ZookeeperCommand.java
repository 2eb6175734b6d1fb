package dev.thaw.cli;

import dev.thaw.cluster.zk.ZkException;
import dev.thaw.cluster.zk.ZooKeeperProcess;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "zookeeper", mixinStandardHelpOptions = true,
        description = {"Run a standalone ZooKeeper server (a child JVM, its data in a new /tmp/thaw-zookeeper-*) on 127.0.0.1 (or --bind) until",
                "Ctrl-C, for cluster restores whose cohorts run in other processes ('thaw cluster restore --zk', 'thaw cluster cohort')."})
final class ZookeeperCommand implements Callable<Integer> {
    @Option(names = "--port", defaultValue = "2181", description = "Client port; 0 picks a free one (default ${DEFAULT-VALUE}).")
    int port;

    @Option(names = "--bind", defaultValue = "127.0.0.1", description = {"Address to listen on (default ${DEFAULT-VALUE}); another, such as a",
            "veth's, for cohorts in other network namespaces ('thaw cluster switch')."})
    String bind;

    @Option(names = "--start-timeout-s", defaultValue = "30", description = "How long it may take to answer (default ${DEFAULT-VALUE}).")
    long startTimeoutSeconds;

    @Override
    public Integer call() throws Exception {
        ZooKeeperProcess zk;
        try {
            zk = ZooKeeperProcess.start(java.net.InetAddress.getByName(bind), port, Duration.ofSeconds(startTimeoutSeconds));
        } catch (java.net.UnknownHostException e) {
            System.err.println("thaw zookeeper: --bind: expected an address, actual '" + bind + "' (" + e.getMessage() + ")");
            return 2;
        } catch (ZkException e) {
            System.err.println("thaw zookeeper: " + e.getMessage());
            return 1;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(zk::close, "zookeeper-shutdown"));
        System.out.println("ZooKeeper serving at " + zk.connectString() + " (pid " + zk.pid() + "); Ctrl-C ends it and removes its data");
        int status = zk.waitFor();
        System.err.println("thaw zookeeper: the server's JVM exited with status " + status);
        return 1;
    }
}
