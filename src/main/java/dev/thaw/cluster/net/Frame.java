package dev.thaw.cluster.net;

import dev.thaw.cluster.Traffic;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * An Ethernet frame that member {@code from} sent and the switch has for member {@code to}, not yet
 * delivered. {@code sequence} is the order in which the switch read it (copies of one flooded frame
 * share it). The switch never changes {@code data} after reading it; nor may the caller.
 */
public record Frame(long sequence, String from, String to, byte[] data) {
    public Frame {
        if (data.length == 0) throw new IllegalArgumentException("frame " + from + " -> " + to + ": expected bytes, actual none");
    }

    /** The frames per ordered pair of members, for the restore dependency graph. */
    public static List<Traffic> summarize(Collection<Frame> frames) {
        Map<String, long[]> sums = new TreeMap<>();
        Map<String, List<String>> pairs = new TreeMap<>();
        for (Frame f : frames) {
            String key = f.from() + "\0" + f.to();
            pairs.putIfAbsent(key, List.of(f.from(), f.to()));
            long[] s = sums.computeIfAbsent(key, k -> new long[2]);
            s[0]++;
            s[1] += f.data().length;
        }
        List<Traffic> out = new ArrayList<>();
        for (Map.Entry<String, long[]> e : sums.entrySet()) {
            List<String> p = pairs.get(e.getKey());
            out.add(new Traffic(p.get(0), p.get(1), e.getValue()[0], e.getValue()[1]));
        }
        return out;
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
