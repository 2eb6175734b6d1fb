package dev.thaw.cluster.zk;

/** What goes wrong with ZooKeeper itself: its server would not start, or a client lost it. */
public abstract sealed class ZkException extends RuntimeException {
    ZkException(String message, Throwable cause) {
        super(message, cause);
    }

    /** The server the project starts did not come up. */
    public static final class ServerFailed extends ZkException {
        public ServerFailed(String message, Throwable cause) {
            super("ZooKeeper server: " + message, cause);
        }
    }
}
