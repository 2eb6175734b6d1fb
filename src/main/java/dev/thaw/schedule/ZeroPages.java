package dev.thaw.schedule;

/** Which target pages of the image are all zero (never sent in the background; they read as zero after EOF). */
@FunctionalInterface
public interface ZeroPages {
    boolean isZero(int block, int page);
}
