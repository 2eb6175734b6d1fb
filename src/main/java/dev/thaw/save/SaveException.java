package dev.thaw.save;

/** A save that did not produce an image; the message says which step failed and why. No partial image is left. */
public final class SaveException extends RuntimeException {
    public SaveException(String message, Throwable cause) {
        super(message, cause);
    }
}
