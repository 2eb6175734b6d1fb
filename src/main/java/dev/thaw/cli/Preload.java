package dev.thaw.cli;

import java.util.List;

/**
 * What a {@code thaw restore} needs before it can launch QEMU and that does not depend on its arguments, begun on a thread of
 * its own while the main thread parses them. Why: in a fresh JVM the logging set-up, the JSON mappers' deserializers and the
 * native call that makes the spare monitor's FIFOs each cost tens of milliseconds of cold code, one after the other on the
 * restore's path to a running guest; the host's second CPU is idle until QEMU starts. Best effort: a failure here is met
 * again where the restore does the same work (a static initialiser that failed here is reported there with this failure as
 * its cause). Measured in docs/benchmarks.md (twenty-third session).
 */
final class Preload {
    /** Classes whose static initialisers a restore runs before QEMU's launch (mappers, loggers, native-call handles). */
    private static final List<String> CLASSES = List.of("dev.thaw.image.Manifest", "dev.thaw.image.CheckpointImage",
            "dev.thaw.qemu.QemuVm", "dev.thaw.qemu.SpareMonitor", "dev.thaw.qemu.QmpClient", "dev.thaw.qemu.VmConfig",
            "dev.thaw.restore.IncomingQemu", "dev.thaw.restore.RestoreTraces", "dev.thaw.restore.PostcopyRestore",
            "dev.thaw.restore.PausedRestores");

    private Preload() {}

    /** Starts the preload for {@code command} (the first argument) and returns its thread; none for commands that do not restore. */
    static java.util.Optional<Thread> start(String command) {
        if (!"restore".equals(command)) return java.util.Optional.empty();
        return java.util.Optional.of(Thread.ofPlatform().daemon().name("preload").start(() -> {
            try {
                org.slf4j.LoggerFactory.getLogger(Preload.class);
                ClassLoader loader = Preload.class.getClassLoader();
                for (String name : CLASSES) Class.forName(name, true, loader);
                dev.thaw.image.Manifest.preload();
                dev.thaw.restore.IncomingQemu.preload();
            } catch (Throwable ignored) {
                // Best effort (see the class comment).
            }
        }));
    }

    /** The classes preloaded, for the test that keeps the list true as classes move. */
    static List<String> classNames() {
        return CLASSES;
    }
}
