package dev.thaw.cluster.zk;

import dev.thaw.cluster.checkpoint.CheckpointException;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import dev.thaw.cluster.CohortMessage;
import java.util.concurrent.BlockingQueue;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.KeeperException;

/**
 * One process's Curator client for a restore, and whether its session is lost. Curator reports LOST once the connection has
 * been down for the session's timeout (or the session expired): from then on the restore cannot be coordinated, and
 * {@link #check()} fails it naming the server.
 */
final class ZkSession implements AutoCloseable {
    /** ZooKeeper's session timeout for restores: a process gone (or ZooKeeper gone) is noticed this long after. */
    static final Duration SESSION_TIMEOUT = Duration.ofSeconds(4);

    final CuratorFramework client;
    final String connectString;
    private final String who;
    private volatile String lost;

    private ZkSession(CuratorFramework client, String connectString, String who) {
        this.client = client;
        this.connectString = connectString;
        this.who = who;
    }

    /** Connects, waiting at most {@code timeout}; fails the restore for {@code member} (null: the coordinator) if it cannot. */
    static ZkSession connect(String connectString, String member, Duration timeout) {
        CuratorFramework client = CuratorFrameworkFactory.builder().connectString(connectString)
                .sessionTimeoutMs((int) SESSION_TIMEOUT.toMillis()).connectionTimeoutMs((int) Math.min(timeout.toMillis(), 5000))
                .retryPolicy(new RetryNTimes(2, 250)).build();
        String who = member == null ? "the coordinator" : "the cohort of " + member;
        ZkSession s = new ZkSession(client, connectString, who);
        client.getConnectionStateListenable().addListener((c, state) -> {
            if (state == ConnectionState.LOST) {
                s.lost = "lost ZooKeeper at " + connectString + ": " + who + "'s session ended (no connection for its "
                        + SESSION_TIMEOUT.toSeconds() + " s timeout, or expired)";
            }
        });
        client.start();
        boolean connected;
        try {
            connected = client.blockUntilConnected((int) timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            connected = false;
        }
        if (!connected) {
            client.close();
            throw new CheckpointException.RestoreFailed(member, "expected a connection to ZooKeeper at " + connectString + " within "
                    + timeout.toSeconds() + " s, actual none", null);
        }
        return s;
    }

    /** Fails the restore (for {@code member}, null: the whole restore) if the session is lost. */
    void check(String member) {
        String why = lost;
        if (why != null) throw new CheckpointException.RestoreFailed(member, why, null);
    }

    /** A ZooKeeper call that failed: the restore fails, saying which call and, when the session is lost, that. */
    CheckpointException failed(String member, String what, Exception e) {
        if (e instanceof CheckpointException c) return c;
        String why = lost;
        if (why == null && (e instanceof KeeperException.ConnectionLossException || e instanceof KeeperException.SessionExpiredException)) {
            why = "lost ZooKeeper at " + connectString + ": " + who + "'s connection to it was lost";
        }
        return new CheckpointException.RestoreFailed(member, (why != null ? why : "ZooKeeper at " + connectString + " failed") + " ("
                + what + ": " + e + ")", e);
    }

    /**
     * A Curator distributed queue at {@code path} whose items (bytes, as they are) this process puts, and takes into {@code inbox}
     * when it is not null. Started.
     */
    DistributedQueue<byte[]> queue(String path, BlockingQueue<byte[]> inbox) throws Exception {
        QueueConsumer<byte[]> consumer = inbox == null ? null : new QueueConsumer<>() {
            @Override
            public void consumeMessage(byte[] message) {
                inbox.add(message);
            }

            @Override
            public void stateChanged(CuratorFramework c, ConnectionState newState) {}
        };
        DistributedQueue<byte[]> q = QueueBuilder.builder(client, consumer, CohortWire.RAW, path).buildQueue();
        q.start();
        return q;
    }

    /** An item taken from a queue, decoded; a malformed one fails the restore (for {@code member}), saying it came from {@code from}. */
    static CohortMessage decode(byte[] raw, String member, String from) {
        try {
            return CohortWire.INSTANCE.deserialize(raw);
        } catch (IllegalArgumentException e) {
            throw new CheckpointException.RestoreFailed(member, "a malformed message from " + from + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        client.close();
    }
}
