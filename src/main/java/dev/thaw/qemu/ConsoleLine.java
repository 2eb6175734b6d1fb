package dev.thaw.qemu;

/** One line the guest wrote to its serial console, stamped with the host's {@link System#nanoTime()} on arrival. */
public record ConsoleLine(long hostNanos, String text) {}
