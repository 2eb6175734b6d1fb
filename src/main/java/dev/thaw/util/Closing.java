package dev.thaw.util;

/** Closing on the way out (a failure, a stop, a peer gone), where a second failure would only hide the first. */
public final class Closing {
    private Closing() {}

    /** Closes {@code resource} (nothing if null), ignoring what its close throws but an {@link Error}; an interrupt is kept. */
    public static void quietly(AutoCloseable resource) {
        if (resource == null) return;
        try {
            resource.close();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Exception e) {
            // what closing is for is done or cannot be done: nothing is left to do with the error
        }
    }
}
