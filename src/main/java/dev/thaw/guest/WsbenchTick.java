package dev.thaw.guest;

import dev.thaw.qemu.ConsoleLine;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One 100 ms report of wsbench: {@code wsbench tick <seq> <guest_monotonic_ns> <ops_in_interval> <stalled_ns_in_interval>}.
 *
 * @param hostNanos    when the host read the line ({@link System#nanoTime()})
 * @param guestNanos   the guest's CLOCK_MONOTONIC when it printed the line
 * @param opCount      random 8-byte read+write operations done since the previous tick
 * @param stalledNanos guest time since the previous tick in gaps of 40 us or more between two of wsbench's clock reads (time
 *                     its workload did not run: guest/src/wsbench.c); {@link #NOT_REPORTED} from a guest built before it
 *                     reported them
 */
public record WsbenchTick(long hostNanos, long seq, long guestNanos, long opCount, long stalledNanos) {
    /** {@link #stalledNanos} of a tick without it. */
    public static final long NOT_REPORTED = -1;

    // Anywhere in the line: a kernel message may share the line with the tick.
    private static final Pattern TICK = Pattern.compile("wsbench tick (\\d+) (\\d+) (\\d+)(?: (\\d+))?");

    /** A tick without stalled time (a guest built before wsbench reported it). */
    public WsbenchTick(long hostNanos, long seq, long guestNanos, long opCount) {
        this(hostNanos, seq, guestNanos, opCount, NOT_REPORTED);
    }

    /** Whether every tick reports its stalled time. */
    public static boolean stallsReported(java.util.List<WsbenchTick> ticks) {
        return !ticks.isEmpty() && ticks.stream().allMatch(t -> t.stalledNanos() >= 0);
    }

    /** Every tick in a console's lines, in order. */
    public static java.util.List<WsbenchTick> all(java.util.List<ConsoleLine> lines) {
        return lines.stream().map(WsbenchTick::parse).flatMap(Optional::stream).toList();
    }

    /** Operations of the ticks that arrived in (fromNanos, toNanos] of host time. */
    public static long opsArrivedBetween(java.util.List<WsbenchTick> ticks, long fromNanos, long toNanos) {
        return ticks.stream().filter(t -> t.hostNanos() > fromNanos && t.hostNanos() <= toNanos).mapToLong(WsbenchTick::opCount).sum();
    }

    public static Optional<WsbenchTick> parse(ConsoleLine line) {
        Matcher m = TICK.matcher(line.text());
        if (!m.find()) return Optional.empty();
        return Optional.of(new WsbenchTick(line.hostNanos(), Long.parseLong(m.group(1)), Long.parseLong(m.group(2)),
                Long.parseLong(m.group(3)), m.group(4) == null ? NOT_REPORTED : Long.parseLong(m.group(4))));
    }
}
