package dev.thaw.restore;

/** A restore that failed; the message names the step, the QEMU and the cause. The destination QEMU is killed. */
public final class RestoreException extends RuntimeException {
    public RestoreException(String message, Throwable cause) {
        super(message, cause);
    }
}
