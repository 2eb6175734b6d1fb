package dev.thaw.restore;

import dev.thaw.estimate.Sizing;
import java.util.Locale;
import java.util.OptionalInt;

/**
 * Which working set a ws restore uses and how much of it it prefetches.
 *
 * @param source        where the queue comes from
 * @param pages         prefetch at most this many pages (empty: no cap)
 * @param fraction      prefetch this fraction of the estimated working-set size (HotRestore: 0.5); the rest of the queue
 *                      goes first in the background
 */
public record WorkingSetChoice(Source source, OptionalInt pages, double fraction) {
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
        if (!(fraction > 0) || fraction > 4) throw new IllegalArgumentException("--ws-fraction: expected (0, 4], actual " + fraction);
        if (pages.isPresent() && pages.getAsInt() < 0) throw new IllegalArgumentException("--ws-pages: expected >= 0, actual " + pages.getAsInt());
    }

    public static WorkingSetChoice defaults() {
        return new WorkingSetChoice(Source.AUTO, OptionalInt.empty(), Sizing.HOTRESTORE.prefetchFraction());
    }
}
