package dev.thaw.host;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Whether this host can scan accessed bits of a process's pages: the kernel's idle page tracking
 * ({@code /sys/kernel/mm/page_idle/bitmap}, CONFIG_IDLE_PAGE_TRACKING) and PFNs in
 * {@code /proc/PID/pagemap} (root). The access-bit estimator needs both.
 */
public final class IdlePageTracking {
    public static final Path BITMAP = Path.of("/sys/kernel/mm/page_idle/bitmap");

    private IdlePageTracking() {}

    /** Empty when the host has what the access-bit estimator needs, else why not, plainly. */
    public static Optional<String> unavailableReason() {
        if (!Files.exists(BITMAP)) {
            return Optional.of("this host kernel has no idle page tracking (" + BITMAP + " is absent: CONFIG_IDLE_PAGE_TRACKING is off),"
                    + " so accessed bits cannot be scanned; use --estimator dirty or trace");
        }
        if (!Files.isReadable(BITMAP) || !Files.isWritable(BITMAP)) {
            return Optional.of(BITMAP + " exists but is not readable and writable by this user (root is needed); use --estimator dirty or trace");
        }
        return Optional.empty();
    }
}
