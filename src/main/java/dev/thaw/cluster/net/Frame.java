package dev.thaw.cluster.net;

import dev.thaw.cluster.Traffic;
import java.util.Arrays;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * An Ethernet frame that member {@code from} sent and the switch has for member {@code to}, not yet
 * delivered. {@code sequence} is the order in which the switch read it (copies of one flooded frame
 * share it). The switch never changes {@code data} after reading it; nor may the caller.
 */
public record Frame(long sequence, String from, String to, byte[] data) {
    public Frame {
        if (data.length == 0) throw new IllegalArgumentException("frame " + from + " -> " + to + ": expected bytes, actual none");
    }

    /** The frames per ordered pair of members, by sender then receiver: the restore dependency graph's input. */
    public static List<Traffic> summarize(Collection<Frame> frames) {
        Map<List<String>, Traffic> sums = new HashMap<>();
        for (Frame f : frames) sums.merge(List.of(f.from(), f.to()), new Traffic(f.from(), f.to(), 1, f.data().length), Traffic::plus);
        return sums.values().stream().sorted(Comparator.comparing(Traffic::from).thenComparing(Traffic::to)).toList();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Frame f && sequence == f.sequence && from.equals(f.from) && to.equals(f.to) && Arrays.equals(data, f.data);
    }

    @Override
    public int hashCode() {
        return (Long.hashCode(sequence) * 31 + from.hashCode()) * 31 + Arrays.hashCode(data);
    }

    @Override
    public String toString() {
        return "Frame[" + sequence + " " + from + " -> " + to + ", " + data.length + " bytes]";
    }
}
