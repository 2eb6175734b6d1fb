package dev.thaw.guest;

import dev.thaw.qemu.ConsoleLine;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One 100 ms report of wsbench: {@code wsbench tick <seq> <guest_monotonic_ns> <ops_in_interval>}.
 *
 * @param hostNanos  when the host read the line ({@link System#nanoTime()})
 * @param guestNanos the guest's CLOCK_MONOTONIC when it printed the line
 * @param opCount    random 8-byte read+write operations done since the previous tick
 */
public record WsbenchTick(long hostNanos, long seq, long guestNanos, long opCount) {
    // Anywhere in the line: a kernel message may share the line with the tick.
    private static final Pattern TICK = Pattern.compile("wsbench tick (\\d+) (\\d+) (\\d+)");

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
                Long.parseLong(m.group(3))));
    }
}
