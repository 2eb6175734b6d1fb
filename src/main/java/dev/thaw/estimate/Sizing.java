package dev.thaw.estimate;

import java.util.OptionalLong;

/**
 * Working-set size (HotRestore): WSS = a x WSS_sample + b x WSS_snapshot, where WSS_sample comes from
 * sampling during normal execution (accessed or dirty bits) and WSS_snapshot counts the pages
 * touched after the save (the trace); a = 0.7 and b = 0.3 by default. A restore prefetches a
 * fraction of it (HotRestore: one half) and streams the rest of the queue first in the background.
 */
public record Sizing(double sampleWeight, double snapshotWeight, double prefetchFraction) {
    public static final Sizing HOTRESTORE = new Sizing(0.7, 0.3, 0.5);

    public Sizing {
        if (!(sampleWeight >= 0) || !(snapshotWeight >= 0) || sampleWeight + snapshotWeight <= 0) {
            throw new IllegalArgumentException("weights: expected a, b >= 0 and a + b > 0, actual a=" + sampleWeight + " b=" + snapshotWeight);
        }
        if (!(prefetchFraction >= 0) || prefetchFraction > 4) {
            throw new IllegalArgumentException("prefetch fraction: expected 0..4, actual " + prefetchFraction);
        }
    }

    /** The same weights with another prefetch fraction. */
    public Sizing withPrefetchFraction(double fraction) {
        return new Sizing(sampleWeight, snapshotWeight, fraction);
    }

    /** The hybrid size; with only one of the two sizes known, that one. */
    public long workingSetPages(OptionalLong sampled, OptionalLong snapshot) {
        if (sampled.isPresent() && snapshot.isPresent()) {
            return Math.round((sampleWeight * sampled.getAsLong() + snapshotWeight * snapshot.getAsLong()) / (sampleWeight + snapshotWeight));
        }
        if (sampled.isPresent()) return sampled.getAsLong();
        if (snapshot.isPresent()) return snapshot.getAsLong();
        throw new IllegalArgumentException("working-set size: expected a sampled or a snapshot size, actual neither");
    }

    /** Pages a restore prefetches from this queue: the fraction of the estimated size, at most the queue. */
    public int prefetchPages(WorkingSet ws) {
        return (int) Math.min(ws.size(), Math.ceil(prefetchFraction * ws.estimatedPageCount()));
    }
}
