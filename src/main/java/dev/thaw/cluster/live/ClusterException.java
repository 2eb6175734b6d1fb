package dev.thaw.cluster.live;

import java.time.Duration;

/** A live cluster that failed; the message names the member and its QEMU's state. The cluster is not usable after it. */
public abstract sealed class ClusterException extends RuntimeException
        permits ClusterException.MemberDied, ClusterException.TimedOut, ClusterException.WorkloadFailed {
    private final String member;

    ClusterException(String member, String message, Throwable cause) {
        super(message, cause);
        this.member = member;
    }

    public String member() {
        return member;
    }

    /** The member's QEMU exited while the cluster needed it. */
    public static final class MemberDied extends ClusterException {
        MemberDied(String member, String state) {
            this(member, state, null);
        }

        MemberDied(String member, String state, Throwable cause) {
            super(member, "cluster member " + member + ": expected its QEMU running, actual " + state, cause);
        }
    }

    /** The member did not reach a step within its timeout (its QEMU still runs). */
    public static final class TimedOut extends ClusterException {
        TimedOut(String member, String step, Duration timeout, String state) {
            super(member, "cluster member " + member + ": expected " + step + " within " + timeout.toMillis() + " ms, actual not yet; "
                    + state, null);
        }
    }

    /** The member's workload (tcpstream) reported an error on its console. */
    public static final class WorkloadFailed extends ClusterException {
        WorkloadFailed(String member, String line) {
            super(member, "cluster member " + member + ": its workload failed: " + line, null);
        }
    }
}
