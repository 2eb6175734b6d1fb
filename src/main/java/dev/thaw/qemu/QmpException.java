package dev.thaw.qemu;

import java.time.Duration;

/** Every way a QMP exchange can fail; each message names the command and the QEMU it went to. */
public sealed abstract class QmpException extends RuntimeException {
    private final String command;

    QmpException(String command, String message, Throwable cause) {
        super(message, cause);
        this.command = command;
    }

    /** The QMP command that failed, or the handshake step. */
    public String command() {
        return command;
    }

    /** QEMU answered with an error object. */
    public static final class CommandFailed extends QmpException {
        private final String errorClass;
        private final String description;

        public CommandFailed(String peer, String command, String errorClass, String description) {
            super(command, peer + ": QMP command '" + command + "' failed: " + errorClass + ": " + description, null);
            this.errorClass = errorClass;
            this.description = description;
        }

        /** QEMU's error class, e.g. {@code CommandNotFound} or {@code GenericError}. */
        public String errorClass() {
            return errorClass;
        }

        public String description() {
            return description;
        }
    }

    /** No answer within the call's timeout; the connection stays usable. */
    public static final class Timeout extends QmpException {
        public Timeout(String peer, String command, Duration timeout) {
            super(command, peer + ": QMP command '" + command + "' got no answer within " + timeout.toMillis() + " ms", null);
        }
    }

    /** The connection closed (QEMU exited or was killed) before the answer came. */
    public static final class ConnectionLost extends QmpException {
        public ConnectionLost(String peer, String command, String reason, Throwable cause) {
            super(command, peer + ": QMP connection lost during '" + command + "': " + reason, cause);
        }
    }

    /** QEMU sent something that is not QMP as documented (bad JSON, missing fields, bad greeting). */
    public static final class ProtocolViolation extends QmpException {
        public ProtocolViolation(String peer, String command, String detail) {
            super(command, peer + ": QMP protocol violation during '" + command + "': " + detail, null);
        }
    }

    /** A migration ended otherwise than {@code completed}: QEMU reports it failed or cancelled. */
    public static final class MigrationFailed extends QmpException {
        private final String status;
        private final String errorDescription;

        public MigrationFailed(String peer, String status, String errorDescription) {
            super("query-migrate", peer + ": the migration " + status + ": " + errorDescription, null);
            this.status = status;
            this.errorDescription = errorDescription;
        }

        /** QEMU's migration status: {@code failed} or {@code cancelled}. */
        public String status() {
            return status;
        }

        /** QEMU's description of the failure, or "". */
        public String errorDescription() {
            return errorDescription;
        }
    }
}
