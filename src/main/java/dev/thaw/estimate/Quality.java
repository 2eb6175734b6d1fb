package dev.thaw.estimate;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * How good a working-set queue was, against what the guest touched after a restore (the pages in
 * first-touch order, as a restore that sends nothing ahead of the guest observes them), after
 * HotRestore (section 6.1.1): for a working set of the first {@code n} pages of the queue,
 *
 * <ul>
 *   <li>hit rate: of the first {@code n} pages the guest touched, the fraction in the working set;
 *   <li>accuracy: of the working set, the fraction the guest touched among its first 1.2 n touches
 *       (HotRestore traces an extra fifth: working-set pages are touched "within a short while");
 *   <li>coverage: of every page the guest touched in the observation, the fraction in the working set.
 * </ul>
 */
public record Quality(int size, double hitRate, double accuracy, double coverage) {
    public static Quality of(List<PageRef> queue, int size, List<PageRef> touched) {
        if (size < 1) throw new IllegalArgumentException("size: expected at least 1 page, actual " + size);
        Set<PageRef> ws = new HashSet<>(queue.subList(0, Math.min(size, queue.size())));
        List<PageRef> distinct = touched.stream().distinct().toList();
        long hits = distinct.stream().limit(size).filter(ws::contains).count();
        long extended = distinct.stream().limit((long) Math.ceil(size * 1.2)).filter(ws::contains).count();
        long covered = distinct.stream().filter(ws::contains).count();
        return new Quality(size, (double) hits / size, ws.isEmpty() ? 0 : (double) extended / ws.size(),
                distinct.isEmpty() ? 0 : (double) covered / distinct.size());
    }
}
