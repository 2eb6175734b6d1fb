package dev.thaw.estimate;

import java.util.Locale;

/** Which estimator made a working set. The code is on disk in the image's working-set section (0 is never valid). */
public enum Estimator {
    INVALID(0),
    /** Accessed bits of the QEMU process's guest-RAM pages, scanned before the save (host idle page tracking). */
    ABIT(1),
    /** Dirty-bit recency: pages QEMU sent again in later iterations of a live (precopy) save. */
    DIRTY(2),
    /** Post-save tracing: the order in which the guest faulted pages in right after the save (FAFL queue). */
    TRACE(3),
    /** Learned from restores: a restore's working set followed by the pages it still had to fault in. */
    LEARNED(4),
    /** No estimate: every page arrives on demand or in the background. */
    NONE(5);

    private final int code;

    Estimator(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static Estimator of(int code) {
        for (Estimator e : values()) {
            if (e.code == code && e != INVALID) return e;
        }
        return INVALID;
    }

    /** Parses a name as given on the command line (abit, dirty, trace, learned, none). */
    public static Estimator parse(String name) {
        for (Estimator e : values()) {
            if (e != INVALID && e.label().equals(name.toLowerCase(Locale.ROOT))) return e;
        }
        throw new IllegalArgumentException("estimator: expected abit, dirty, trace, learned or none, actual '" + name + "'");
    }
}
