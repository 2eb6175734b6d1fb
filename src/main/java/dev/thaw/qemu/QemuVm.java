package dev.thaw.qemu;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import dev.thaw.util.FileTrees;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A running {@code qemu-system-x86_64} and everything Thaw holds of it: the process, its QMP
 * connection, its serial console and its stderr.
 *
 * <p>Threads: one reads the console (stdout) and one reads stderr, from launch to exit, so no pipe
 * ever fills and freezes the guest; QMP has its own reader. No QEMU outlives its handle:
 * {@link #close} kills it (SIGTERM, then SIGKILL after a short grace, since a paused postcopy QEMU
 * ignores SIGTERM), and a JVM shutdown hook does the same for every handle still open.
 */
public final class QemuVm implements AutoCloseable {
    public static final String QEMU_BINARY = "qemu-system-x86_64";
    public static final Duration KILL_GRACE = Duration.ofSeconds(1);
    private static final Duration QMP_CONNECT_TIMEOUT = Duration.ofSeconds(30);
    private static final int STDERR_LINES_KEPT = 200;
    private static final Logger log = LoggerFactory.getLogger(QemuVm.class);
    private static final Set<QemuVm> LIVE = ConcurrentHashMap.newKeySet();
    /** Who is told of the QEMUs that a piece of work launches or attaches to ({@link #tracking}); threads it starts inherit it. */
    private static final InheritableThreadLocal<java.util.function.Consumer<QemuVm>> TRACKED = new InheritableThreadLocal<>();
    /** The launch configuration, written beside the QMP socket. */
    public static final String CONFIG_FILE = "vm.json";
    public static final String EXTRA_QMP_SOCKET = "qmp-extra.sock";
    /** The guest agent's serial port (ttyS1) in the run directory, beside {@link #CONFIG_FILE}: where {@code save --drop-caches} finds it. */
    public static final String CONTROL_SOCKET = "control.sock";
    /** QEMU's pid, beside the QMP socket. */
    public static final String PID_FILE = "qemu.pid";
    /** The run directories of Thaw's QEMUs: {@code /tmp/thaw-vm-*}. */
    public static final Path RUN_DIR_PARENT = Path.of("/tmp");
    public static final String RUN_DIR_PREFIX = "thaw-vm-";
    private static final com.fasterxml.jackson.databind.ObjectMapper CONFIG_JSON =
            new com.fasterxml.jackson.databind.ObjectMapper().findAndRegisterModules();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            for (QemuVm vm : LIVE) {
                vm.close(); // kill, then release what was reserved for it (hugetlb pages)
            }
        }, "thaw-qemu-reaper"));
    }

    private final VmConfig config;
    /** QEMU as Thaw's child (exit status, stdout, stderr), or null when attached to a QEMU another Thaw launched. */
    private final Process process;
    private final ProcessHandle handle;
    private final Path runDir;
    // Lines are cut at 64 KiB, so the count alone would allow 13 GB; 64 MiB keeps ~500,000 wsbench ticks.
    private final Journal<ConsoleLine> console = new Journal<>(200_000, 64L << 20, line -> 48 + 2L * line.text().length());
    private final Deque<String> stderrTail = new ArrayDeque<>();
    /** Reads QEMU's stderr until its end; null when attached. */
    private volatile Thread stderrReader;
    private final long launchedNanos;
    private volatile QmpClient qmp;
    private final List<Runnable> onClose = new java.util.concurrent.CopyOnWriteArrayList<>();

    private QemuVm(VmConfig config, Process process, ProcessHandle handle, Path runDir, long launchedNanos) {
        this.config = config;
        this.process = process;
        this.handle = handle;
        this.runDir = runDir;
        this.launchedNanos = launchedNanos;
    }

    /** Starts QEMU and connects to its QMP socket; on any failure QEMU is killed and the error names why. */
    public static QemuVm launch(VmConfig config) {
        return launch(config, List.of());
    }

    /**
     * @param launchArgs Thaw's own arguments for this launch only (a memory backend, a snapshot drive):
     *                   not part of the configuration, so never written to {@code vm.json} nor into an image
     */
    public static QemuVm launch(VmConfig config, List<String> launchArgs) {
        return launch(config, launchArgs, false);
    }

    /**
     * @param spareMonitor also a {@link SpareMonitor}, negotiated here: a QMP session another Thaw can use after this one died
     *                     (the QEMU of a lazy or ws restore, which may be left paused in postcopy)
     */
    public static QemuVm launch(VmConfig config, List<String> launchArgs, boolean spareMonitor) {
        Path runDir;
        try {
            // Short path: unix socket paths are limited to 107 bytes.
            runDir = Files.createTempDirectory(RUN_DIR_PARENT, RUN_DIR_PREFIX);
        } catch (IOException e) {
            throw new QemuLaunchException("cannot create a run directory for " + config.name() + ": " + e.getMessage(), e);
        }
        List<String> command = new java.util.ArrayList<>(config.qemuArguments(QEMU_BINARY, runDir.resolve("qmp.sock"),
                runDir.resolve(EXTRA_QMP_SOCKET), runDir.resolve(CONTROL_SOCKET)));
        command.addAll(launchArgs);
        if (spareMonitor) {
            try {
                command.addAll(SpareMonitor.prepare(runDir));
            } catch (IOException e) {
                FileTrees.deleteQuietly(runDir);
                throw new QemuLaunchException("cannot prepare the spare monitor of " + config.name() + ": " + e.getMessage(), e);
            }
        }
        log.debug("launching {}: {}", config.name(), String.join(" ", command));
        long launched = System.nanoTime();
        Process process;
        try {
            process = new ProcessBuilder(command).start();
        } catch (IOException e) {
            FileTrees.deleteQuietly(runDir);
            throw new QemuLaunchException("cannot start " + QEMU_BINARY + " for " + config.name() + ": " + e.getMessage(), e);
        }
        QemuVm vm = new QemuVm(config, process, process.toHandle(), runDir, launched);
        try {
            // The configuration beside the QMP socket lets 'thaw save --qmp SOCKET' record how to start this guest again, and
            // the pid lets another Thaw attach to this QEMU (a restore resumed after the Thaw that launched it died).
            CONFIG_JSON.writeValue(runDir.resolve(CONFIG_FILE).toFile(), config);
            Files.writeString(runDir.resolve(PID_FILE), Long.toString(process.pid()));
        } catch (IOException e) {
            log.warn("cannot write {}: {}", runDir.resolve(CONFIG_FILE), e.toString());
        }
        register(vm);
        vm.startReaders();
        try {
            vm.qmp = QmpClient.connect(runDir.resolve("qmp.sock"), config.name(), QMP_CONNECT_TIMEOUT, process::isAlive);
            if (spareMonitor) SpareMonitor.negotiate(runDir, config.name(), QMP_CONNECT_TIMEOUT);
        } catch (QmpException e) {
            vm.awaitExit(Duration.ofMillis(500));
            String detail = vm.describeState();
            vm.close();
            throw new QemuLaunchException("QEMU for " + config.name() + " did not come up: " + e.getMessage() + "; " + detail, e);
        }
        return vm;
    }

    private void startReaders() {
        Thread.ofPlatform().daemon().name("qemu-console-" + config.name())
                .start(() -> readLines(process.getInputStream(), line -> console.append(new ConsoleLine(System.nanoTime(), line)),
                        () -> console.close("QEMU's console closed (" + describeState() + ")")));
        stderrReader = Thread.ofPlatform().daemon().name("qemu-stderr-" + config.name())
                .start(() -> readLines(process.getErrorStream(), line -> {
                    log.debug("{} stderr: {}", config.name(), line);
                    synchronized (stderrTail) {
                        stderrTail.addLast(line);
                        if (stderrTail.size() > STDERR_LINES_KEPT) stderrTail.removeFirst();
                    }
                }, () -> {}));
    }

    private static void readLines(InputStream in, Consumer<String> sink, Runnable atEnd) {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        byte[] buffer = new byte[8192];
        try (in) {
            for (int n; (n = in.read(buffer)) > 0; ) {
                for (int i = 0; i < n; i++) {
                    byte b = buffer[i];
                    if (b == '\n') {
                        sink.accept(line.toString(StandardCharsets.UTF_8).replace("\r", ""));
                        line.reset();
                    } else if (line.size() < 64 << 10) {
                        line.write(b);
                    }
                }
            }
        } catch (IOException e) {
            // The process is gone.
        } finally {
            if (line.size() > 0) sink.accept(line.toString(StandardCharsets.UTF_8).replace("\r", ""));
            atEnd.run();
        }
    }

    public VmConfig config() {
        return config;
    }

    public String name() {
        return config.name();
    }

    public QmpClient qmp() {
        return qmp;
    }

    /** The guest's serial console (ttyS0), line by line with host timestamps. */
    public Journal<ConsoleLine> console() {
        return console;
    }

    /** The unix socket of the guest agent's serial port (ttyS1). */
    public Path controlSocket() {
        return runDir.resolve(CONTROL_SOCKET);
    }

    /** A second QMP socket for other clients ({@code thaw save --qmp}, a person with socat); Thaw keeps the first. */
    public Path extraQmpSocket() {
        return runDir.resolve(EXTRA_QMP_SOCKET);
    }

    /** A directory private to this QEMU, deleted on close (sockets for migration go here). */
    public Path runDir() {
        return runDir;
    }

    public long pid() {
        return handle.pid();
    }

    /** Whether this QEMU is Thaw's child (launched by this process) rather than attached to. */
    public boolean launchedHere() {
        return process != null;
    }

    /** {@link System#nanoTime()} just before QEMU was started. */
    public long launchedNanos() {
        return launchedNanos;
    }

    public boolean isAlive() {
        return handle.isAlive();
    }

    /**
     * QEMU's run status, or why it has none. A QEMU that does not answer within {@code timeout} is
     * slow or stopped (SIGSTOP, a debugger, a host stall), not dead: only one that exited is, so a
     * command that owns its guest asks again instead of giving up (and killing it on the way out).
     */
    public String statusOrWhyNot(Duration timeout) {
        try {
            return qmp.execute("query-status", null, timeout).path("status").asText();
        } catch (QmpException.Timeout e) {
            return "not answering QMP within " + timeout.toSeconds() + " s; QEMU pid " + pid()
                    + (isAlive() ? " is alive (stopped or slow)" : " exited");
        } catch (QmpException e) {
            return "no status: " + e.getMessage() + "; " + describeState();
        }
    }

    public Optional<Integer> exitCode() {
        if (process == null) return Optional.empty();
        // The handle sees a dead child (a zombie) as gone before the JDK's reaper has taken its status: wait for that.
        if (!handle.isAlive()) awaitExit(Duration.ofSeconds(1));
        return process.isAlive() ? Optional.empty() : Optional.of(process.exitValue());
    }

    /** Waits for QEMU to exit by itself; true if it did. */
    public boolean awaitExit(Duration timeout) {
        try {
            if (process != null) return process.waitFor(timeout.toNanos(), TimeUnit.NANOSECONDS);
            handle.onExit().get(timeout.toNanos(), TimeUnit.NANOSECONDS);
            return true;
        } catch (java.util.concurrent.TimeoutException | java.util.concurrent.ExecutionException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    public List<String> stderrTail() {
        synchronized (stderrTail) {
            return List.copyOf(stderrTail);
        }
    }

    /** "running" or "exited with status N", with QEMU's last stderr lines: for error messages. */
    public String describeState() {
        // A QEMU that closed QMP is usually on its way out (an abort, a crash, exit(1) after a failed postcopy load): give it a
        // moment, so the message carries its exit status and last words rather than "running".
        if (isAlive() && qmp != null && !qmp.isOpen()) awaitExit(Duration.ofSeconds(2));
        boolean alive = isAlive();
        Thread reader = stderrReader;
        if (!alive && reader != null && reader != Thread.currentThread()) {
            // QEMU's last words (an assertion, glibc's heap check) may still be in the pipe when its exit is seen: read them first.
            try {
                reader.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        String state = alive ? "QEMU pid " + pid() + " is running"
                : "QEMU pid " + pid() + " exited with status " + exitCode().map(String::valueOf).orElse("unknown (not Thaw's child)");
        List<String> tail = stderrTail();
        if (!tail.isEmpty()) {
            state += "; its stderr ends with: " + String.join(" | ", tail.subList(Math.max(0, tail.size() - 5), tail.size()));
        }
        // The guest's own last words: a kernel panic ends QEMU under -no-reboot.
        List<ConsoleLine> lines = console.snapshot();
        if (!lines.isEmpty()) {
            state += "; the guest console ends with: " + String.join(" | ", lines.subList(Math.max(0, lines.size() - 3), lines.size())
                    .stream().map(l -> l.text().length() > 200 ? l.text().substring(0, 200) + "..." : l.text()).toList());
        }
        return state;
    }

    /** Ends QEMU: SIGTERM, then SIGKILL after {@link #KILL_GRACE}. Safe to call more than once. */
    public void kill() {
        if (isAlive()) {
            handle.destroy();
            if (!awaitExit(KILL_GRACE)) {
                handle.destroyForcibly();
                awaitExit(Duration.ofSeconds(5));
            }
        }
    }

    /** Runs {@code action} after this QEMU was killed by {@link #close} (releasing what was reserved for it). */
    public void onClose(Runnable action) {
        onClose.add(action);
    }

    @Override
    public void close() {
        try {
            kill();
            if (qmp != null) qmp.close();
        } finally {
            LIVE.remove(this);
            FileTrees.deleteQuietly(runDir);
            for (Runnable r : onClose) {
                try {
                    r.run();
                } catch (RuntimeException e) {
                    log.warn("{}: cleanup after close failed: {}", config.name(), e.toString());
                }
            }
            onClose.clear();
        }
    }

    /**
     * Attaches to a QEMU that another Thaw process launched (and may have died without ending): its run directory's
     * configuration and pid. No QMP connection yet ({@link #qmp} is null until {@link #connectQmp}): a QEMU paused in postcopy
     * may not answer in band (see {@link SpareMonitor}) until it has its pages again. The handle then owns that QEMU like a launched one ({@link #close}
     * kills it and removes the run directory), except that its console and stderr went to the dead Thaw and are not read.
     *
     * @throws QemuLaunchException naming what is missing: the run directory's files, a live QEMU of that pid, its QMP socket
     */
    public static QemuVm attach(Path runDir) {
        VmConfig config;
        long pid;
        try {
            config = VmConfig.read(runDir.resolve(CONFIG_FILE));
            pid = Long.parseLong(Files.readString(runDir.resolve(PID_FILE)).trim());
        } catch (IOException | RuntimeException e) {
            throw new QemuLaunchException("cannot attach to the QEMU of " + runDir + ": expected its " + CONFIG_FILE + " and " + PID_FILE
                    + ", actual " + e.getMessage(), e);
        }
        ProcessHandle handle = ProcessHandle.of(pid).filter(ProcessHandle::isAlive).orElseThrow(() -> new QemuLaunchException(
                "cannot attach to the QEMU of " + runDir + ": expected a live process " + pid + ", actual none", null));
        // The pid may have been reused since: the process must be that QEMU (its -name is the configuration's).
        String commandLine; // from /proc: the JDK's ProcessHandle.Info has no command line for a process that is not its child
        try {
            commandLine = new String(Files.readAllBytes(Path.of("/proc", Long.toString(pid), "cmdline")), StandardCharsets.UTF_8)
                    .replace('\0', ' ');
        } catch (IOException e) {
            commandLine = "";
        }
        if (!commandLine.contains(QEMU_BINARY) || !commandLine.contains("guest=" + config.name() + ",")) {
            throw new QemuLaunchException("cannot attach to the QEMU of " + runDir + ": expected pid " + pid + " to be " + QEMU_BINARY
                    + " named " + config.name() + ", actual '" + commandLine + "'", null);
        }
        QemuVm vm = new QemuVm(config, null, handle, runDir, System.nanoTime());
        register(vm);
        vm.console.close("attached: the console went to the Thaw that launched this QEMU");
        return vm;
    }

    /** Connects to the QMP socket of an attached QEMU ({@link #attach}); waits up to {@code timeout} for QEMU to answer. */
    public void connectQmp(Duration timeout) {
        if (qmp == null) qmp = QmpClient.connect(runDir.resolve("qmp.sock"), config.name(), timeout, handle::isAlive);
    }

    private static void register(QemuVm vm) {
        LIVE.add(vm);
        java.util.function.Consumer<QemuVm> tracked = TRACKED.get();
        if (tracked != null) tracked.accept(vm);
    }

    /**
     * Runs {@code work} with every QEMU it launches or attaches to, on its own thread or on threads it starts, also handed to
     * {@code registered} (from that thread, once QEMU runs, before its QMP answers): how {@code thaw serve} finds the QEMUs of
     * one client's request, to end them when that client goes, as its own Ctrl-C would have ended a restore in its own process.
     */
    public static <T> T tracking(java.util.function.Consumer<QemuVm> registered, java.util.concurrent.Callable<T> work) throws Exception {
        java.util.function.Consumer<QemuVm> outer = TRACKED.get();
        TRACKED.set(registered);
        try {
            return work.call();
        } finally {
            TRACKED.set(outer);
        }
    }

    /** Handles not yet closed, for tests that check that nothing is left behind. */
    public static Set<QemuVm> live() {
        return Set.copyOf(LIVE);
    }

    /** The open handle of the QEMU named {@code name}, if any (listed from its launch on; {@link #qmp()} is null until QMP answers). */
    public static Optional<QemuVm> live(String name) {
        return live().stream().filter(vm -> vm.name().equals(name)).findFirst();
    }

    /** QEMU could not be started or did not reach the point where QMP answers. */
    public static final class QemuLaunchException extends RuntimeException {
        public QemuLaunchException(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
