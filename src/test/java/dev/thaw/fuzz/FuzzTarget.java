package dev.thaw.fuzz;

import java.util.List;
import java.util.Random;

/**
 * One parser under fuzzing: valid inputs to start from, how to mutate them, what to run on each input, and the
 * exception types that are its contract for malformed input (anything else thrown is a finding).
 *
 * @param seeds    valid inputs, made by the project's own writers; each must run without an exception
 * @param expected the typed errors a malformed input may give; their messages must not be blank
 */
public record FuzzTarget(String name, List<byte[]> seeds, Mutation mutation, Body body, List<Class<? extends Throwable>> expected) {
    @FunctionalInterface
    public interface Mutation {
        byte[] mutate(byte[] input, List<byte[]> corpus, Random random);
    }

    @FunctionalInterface
    public interface Body {
        void run(byte[] input) throws Exception;
    }

    public FuzzTarget {
        seeds = List.copyOf(seeds);
        expected = List.copyOf(expected);
        if (seeds.isEmpty()) throw new IllegalArgumentException("fuzz target " + name + ": expected at least one seed");
    }

    boolean isExpected(Throwable t) {
        return expected.stream().anyMatch(c -> c.isInstance(t));
    }
}
