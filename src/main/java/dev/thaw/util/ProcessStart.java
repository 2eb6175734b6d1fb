package dev.thaw.util;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Optional;

/**
 * When a process started, to the kernel's clock tick (10 ms). Why not {@code ProcessHandle.Info.startInstant()}: on Linux the
 * JDK adds the process's start in ticks since boot to the boot time of {@code /proc/stat}'s {@code btime}, which is whole
 * seconds, so its instant is early by the boot time's fraction of a second, the same for every process of a boot (0.63 s on
 * the project's host on 2026-12-01, which a timing of {@code thaw restore} from its start then included). Here the start is
 * counted back from now by the process's age: the system's uptime ({@code /proc/uptime}, 10 ms) minus its start since boot.
 */
public final class ProcessStart {
    /** USER_HZ: the unit of {@code /proc/PID/stat}'s start time on every Linux architecture Thaw runs on. */
    static final int TICKS_PER_SECOND = 100;

    private ProcessStart() {}

    /** This process's start. */
    public static Optional<Instant> self() {
        return of(ProcessHandle.current().pid());
    }

    /** The start of process {@code pid}; empty if it is gone or {@code /proc} cannot say. */
    public static Optional<Instant> of(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
            String uptime = Files.readString(Path.of("/proc/uptime"));
            Instant now = Instant.now();
            return Optional.of(startOf(stat, uptime, now));
        } catch (IOException | RuntimeException e) {
            return Optional.empty();
        }
    }

    /**
     * The start of the process whose {@code /proc/PID/stat} is {@code stat}, given {@code /proc/uptime} read at {@code now}.
     *
     * @throws IllegalArgumentException naming the field that is not as the kernel writes it
     */
    static Instant startOf(String stat, String uptime, Instant now) {
        // The command name (field 2) is in parentheses and may itself hold spaces and parentheses: fields resume after the last ')'.
        int close = stat.lastIndexOf(')');
        if (close < 0) throw new IllegalArgumentException("/proc/PID/stat: expected '(comm)', actual '" + abbreviate(stat) + "'");
        String[] fields = stat.substring(close + 1).trim().split(" +");
        // Field 22 (starttime) is the 20th after the name: fields 3..22.
        if (fields.length < 20) {
            throw new IllegalArgumentException("/proc/PID/stat: expected at least 22 fields, actual " + (fields.length + 2));
        }
        long startTicks = Long.parseLong(fields[19]);
        String[] up = uptime.trim().split(" +");
        double uptimeSeconds = Double.parseDouble(up[0]);
        long ageNanos = Math.round(uptimeSeconds * 1e9) - startTicks * (1_000_000_000L / TICKS_PER_SECOND);
        if (ageNanos < 0) {
            throw new IllegalArgumentException("/proc/PID/stat: expected a start (" + startTicks + " ticks) before the uptime ("
                    + uptimeSeconds + " s), actual after it");
        }
        return now.minus(Duration.ofNanos(ageNanos));
    }

    private static String abbreviate(String s) {
        return s.length() > 80 ? s.substring(0, 80) + "..." : s;
    }
}
