package dev.thaw.testing;

import java.util.Random;

/** Seeded randomness that tells how to replay it: {@code -Dthaw.seed=N}. */
public final class Seeds {
    private Seeds() {}

    public static Random random(String testName) {
        String fixed = System.getProperty("thaw.seed");
        long seed = fixed != null ? Long.parseLong(fixed) : System.nanoTime();
        System.err.println(testName + ": seed " + seed + " (replay with -Dthaw.seed=" + seed + ")");
        return new Random(seed);
    }
}
