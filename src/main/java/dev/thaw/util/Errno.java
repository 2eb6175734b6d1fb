package dev.thaw.util;

import java.lang.foreign.Arena;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

/**
 * errno of a libc call made through the foreign-function API: a downcall linked with {@link #CAPTURE} takes a call state
 * ({@link #state}) as its first argument, and {@link #of} reads errno from it after the call.
 */
public final class Errno {
    /** The linker option that makes a downcall save errno into its call state. */
    public static final Linker.Option CAPTURE = Linker.Option.captureCallState("errno");
    private static final MemoryLayout STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));

    private Errno() {}

    /** A call state for one or more calls, in {@code arena}. */
    public static MemorySegment state(Arena arena) {
        return arena.allocate(STATE);
    }

    /** The errno the last call given {@code state} saved. */
    public static int of(MemorySegment state) {
        return (int) ERRNO.get(state, 0L);
    }
}
