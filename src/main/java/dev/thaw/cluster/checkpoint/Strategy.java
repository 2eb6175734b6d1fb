package dev.thaw.cluster.checkpoint;

import java.util.Locale;

/**
 * How a cluster is restored, from the baseline to the best ({@link RestorePlan} says what each does).
 * <ul>
 *   <li>{@link #INDEPENDENT}: every member starts as soon as its own restore has loaded it, in no order; the frames in flight at
 *   the cut are not delivered (lost, as for members restored one by one).</li>
 *   <li>{@link #RESTORE_LINE}: HotRestore's restore line: working sets revised so that receivers load first, and the coordinator
 *   starts each member only once every member it sent frames to runs; the frames in flight are not delivered (TCP resends
 *   them, now to a running receiver).</li>
 *   <li>{@link #HELD}: the restore line, and the switch holds every member until it runs: the frames in flight at the cut, and
 *   those sent to it meanwhile, wait in its queue (bounded; exhausting it fails the restore) and arrive in order once it runs.
 *   Nothing is lost. The default.</li>
 * </ul>
 */
public enum Strategy {
    INDEPENDENT, RESTORE_LINE, HELD;

    public static Strategy parse(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "independent" -> INDEPENDENT;
            case "restore-line" -> RESTORE_LINE;
            case "held" -> HELD;
            default -> throw new IllegalArgumentException("--strategy: expected independent, restore-line or held, actual '" + name + "'");
        };
    }

    public String label() {
        return name().toLowerCase(Locale.ROOT).replace('_', '-');
    }
}
