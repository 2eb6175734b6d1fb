package dev.thaw.cluster.checkpoint;

/** A cluster checkpoint that could not be saved or restored; the message names the member (if one) and says what and why. */
public abstract sealed class CheckpointException extends RuntimeException
        permits CheckpointException.SaveFailed, CheckpointException.RestoreFailed {
    private final String member;

    CheckpointException(String member, String message, Throwable cause) {
        super(message, cause);
        this.member = member;
    }

    /** The member it failed on, or null when it is the cluster's own step (the switch, the manifest). */
    public String member() {
        return member;
    }

    /** The save failed; nothing was committed (the partial checkpoint is deleted). */
    public static final class SaveFailed extends CheckpointException {
        SaveFailed(String member, String message, Throwable cause) {
            super(member, "cluster save" + (member == null ? "" : " of member " + member) + " failed: " + message, cause);
        }
    }

    /** The restore failed; every QEMU it started was killed and its switch closed. */
    public static final class RestoreFailed extends CheckpointException {
        public RestoreFailed(String member, String message, Throwable cause) {
            super(member, "cluster restore" + (member == null ? "" : " of member " + member) + " failed: " + message, cause);
        }
    }
}
