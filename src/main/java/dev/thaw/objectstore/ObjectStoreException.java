package dev.thaw.objectstore;

/** What can go wrong with an image in object storage. Each message names the endpoint, bucket or object. */
public sealed abstract class ObjectStoreException extends RuntimeException {
    ObjectStoreException(String message, Throwable cause) {
        super(message, cause);
    }

    /** The endpoint did not answer: refused, unresolvable, or silent past the timeouts. */
    public static final class Unreachable extends ObjectStoreException {
        Unreachable(String detail, Throwable cause) {
            super(detail, cause);
        }
    }

    /** A bucket or object that is not there. */
    public static final class NotFound extends ObjectStoreException {
        NotFound(String detail, Throwable cause) {
            super(detail, cause);
        }
    }

    /** An object whose bytes fail a check (size, checksum, frame). */
    public static final class Corrupt extends ObjectStoreException {
        Corrupt(String detail, Throwable cause) {
            super(detail, cause);
        }
    }

    /** The service answered with an error (access denied, bad request, ...). */
    public static final class Refused extends ObjectStoreException {
        Refused(String detail, Throwable cause) {
            super(detail, cause);
        }
    }

    /** Another process holds the prefix for an operation that excludes this one (a push during a gc, a gc during a push). */
    public static final class Busy extends ObjectStoreException {
        Busy(String detail) {
            super(detail, null);
        }
    }

    /** What this Thaw cannot push or fetch yet. */
    public static final class Unsupported extends ObjectStoreException {
        Unsupported(String detail) {
            super(detail, null);
        }
    }
}
