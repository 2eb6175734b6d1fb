package dev.thaw.measure;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Time the hypervisor under this machine ran something else while this machine's CPUs wanted to run ({@code steal} in
 * {@code /proc/stat}, all CPUs together). On this host (a VM on a shared host) it comes in bursts of 8-20% of 250 ms that
 * stall a restored guest whatever the restore does (tenth session), so the bench reports it beside each restore.
 */
public final class HostSteal {
    private static final Path STAT = Path.of("/proc/stat");

    /** Clock ticks so far: stolen and in all. */
    public record Ticks(long steal, long total) {
        /** The share of the ticks from {@code earlier} to this one that were stolen; -1 where either reading failed or none passed. */
        public double shareSince(Ticks earlier) {
            if (earlier == null || steal < 0 || earlier.steal() < 0 || total <= earlier.total()) return -1;
            return (double) (steal - earlier.steal()) / (total - earlier.total());
        }
    }

    private HostSteal() {}

    /** The ticks so far, or (-1, -1) where the kernel does not say. */
    public static Ticks now() {
        try {
            return parse(Files.readAllLines(STAT));
        } catch (IOException | RuntimeException e) {
            return new Ticks(-1, -1);
        }
    }

    /** From {@code /proc/stat}'s lines: its first, {@code cpu user nice system idle iowait irq softirq steal ...}. */
    static Ticks parse(List<String> lines) {
        String first = lines.isEmpty() ? "" : lines.getFirst();
        String[] f = first.trim().split("\\s+");
        if (f.length < 9 || !f[0].equals("cpu")) {
            throw new IllegalArgumentException("/proc/stat: expected a first line 'cpu' with at least 8 counters, actual '" + first + "'");
        }
        long total = 0;
        for (int i = 1; i < Math.min(f.length, 9); i++) total += Long.parseLong(f[i]); // guest time is counted in user already
        return new Ticks(Long.parseLong(f[8]), total);
    }
}
