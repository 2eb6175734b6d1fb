package dev.thaw.restore;

import java.util.Locale;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * Which working set a ws restore uses and how much of it it prefetches.
 *
 * @param source        where the queue comes from
 * @param pages         prefetch at most this many pages (empty: no cap)
 * @param fraction      prefetch this fraction of the estimated working-set size (HotRestore: 0.5); the rest of the queue
 *                      goes first in the background. Empty: elastic ({@link dev.thaw.estimate.PrefetchSize#elastic}): half
 *                      of a clustered estimate, the whole of a scattered one
 */
public record WorkingSetChoice(Source source, OptionalInt pages, OptionalDouble fraction) {
    public enum Source {
        /** The latest restore's trace when it is newer than the image's working-set section, else the section. */
        AUTO,
        /** The image's working-set section (from the save's estimator or {@code thaw ws --learn}). */
        IMAGE,
        /** Learned from the latest restore of this image. */
        LEARNED;

        public static Source parse(String name) {
            return switch (name.toLowerCase(Locale.ROOT)) {
                case "auto" -> AUTO;
                case "image" -> IMAGE;
                case "learned" -> LEARNED;
                default -> throw new IllegalArgumentException("--ws-source: expected auto, image or learned, actual '" + name + "'");
            };
        }
    }

    public WorkingSetChoice {
        if (fraction.isPresent() && (!(fraction.getAsDouble() > 0) || fraction.getAsDouble() > 4)) {
            throw new IllegalArgumentException("--ws-fraction: expected (0, 4], actual " + fraction.getAsDouble());
        }
        if (pages.isPresent() && pages.getAsInt() < 0) throw new IllegalArgumentException("--ws-pages: expected >= 0, actual " + pages.getAsInt());
    }

    public static WorkingSetChoice defaults() {
        return new WorkingSetChoice(Source.AUTO, OptionalInt.empty(), OptionalDouble.empty());
    }
}
