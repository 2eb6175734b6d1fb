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

    public static Optional<WsbenchTick> parse(ConsoleLine line) {
        Matcher m = TICK.matcher(line.text());
        if (!m.find()) return Optional.empty();
        return Optional.of(new WsbenchTick(line.hostNanos(), Long.parseLong(m.group(1)), Long.parseLong(m.group(2)),
                Long.parseLong(m.group(3))));
    }
}
