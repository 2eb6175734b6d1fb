package dev.thaw.save;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.estimate.DirtyRecency;
import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.image.ImageWriter;
import dev.thaw.image.WorkingSetWriter;
import dev.thaw.image.Manifest;
import dev.thaw.migration.SaveStreamParser;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.QmpException;
import dev.thaw.qemu.VmConfig;
import dev.thaw.util.FileTrees;
import dev.thaw.util.ThawPaths;
import dev.thaw.util.StallWatchdog;
import java.io.BufferedInputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * Saves a running QEMU guest into a checkpoint image: Thaw is the destination of QEMU's
 * {@code migrate} on a unix socket it listens on; it stops the guest, parses the stream into the
 * image (pages into the content store, device state kept opaque) and commits the image only when
 * QEMU reports the migration {@code completed}.
 *
 * <p>With the dirty-bit estimator, a live migration runs first as a probe: the guest runs while QEMU
 * sends RAM in rounds (each re-sending what the guest wrote meanwhile) until it stops the guest
 * for the last round, or Thaw stops it at {@link Options#liveLimit} (the bound on the extra time).
 * The round that last carried each page orders the written part of the working set
 * ({@link DirtyRecency}). The probe writes no image (only the rounds are kept); the image is taken by an ordinary
 * stopped save, because QEMU 7.2's live migration under TCG was seen to send an inconsistent guest
 * (about 1 save in 25 here, QEMU's own restore of the same stream panicking the guest too). The
 * estimate is attached after the commit.
 *
 * <p>With {@link Options#dropCachesAgent} the guest's clean page cache is dropped through its agent first, while it runs
 * ({@link PageCacheDrop}): the pages it frees are zero or free when the stream reads them, so they cost the image nothing.
 *
 * <p>Failure: any error removes the partial image and cancels the migration; a guest that was
 * running is resumed, so a failed save never leaves it stopped. Every wait has a timeout, and a
 * stream that stops moving for {@link Options#stallTimeout} ends the save.
 */
public final class Saver {
    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(Saver.class);

    /** Where a save's socket directory goes: short, since a unix socket's path is limited to 107 bytes. */
    static final Path SOCKET_DIR_PARENT = Path.of("/tmp");
    /** {@code thaw-save-PID-RANDOM}: the saving Thaw's pid, so that a later save removes what a killed one left. */
    static final String SOCKET_DIR_PREFIX = "thaw-save-";

    /**
     * Removes the socket directories of saves whose Thaw is gone (killed: a SIGKILL runs no cleanup; CI's tests that kill a
     * save left three a run); a directory without a pid in its name, or of a live process, is left alone. Returns how many.
     */
    static int removeDeadSocketDirs(Path parent) {
        int removed = 0;
        try (java.nio.file.DirectoryStream<Path> dirs = Files.newDirectoryStream(parent, SOCKET_DIR_PREFIX + "*-*")) {
            for (Path dir : dirs) {
                String rest = dir.getFileName().toString().substring(SOCKET_DIR_PREFIX.length());
                long pid;
                try {
                    pid = Long.parseLong(rest.substring(0, rest.indexOf('-')));
                } catch (NumberFormatException e) {
                    continue;
                }
                if (ProcessHandle.of(pid).filter(ProcessHandle::isAlive).isPresent()) continue;
                FileTrees.deleteQuietly(dir);
                if (!Files.exists(dir)) removed++;
            }
        } catch (IOException e) {
            log.warn("cannot list {} for dead saves' socket directories: {}", parent, e.toString());
        }
        return removed;
    }

    /** QEMU throttles even a stopped guest's migration to 128 MiB/s by default; this lifts it. */
    public static final long MAX_BANDWIDTH_BYTES_PER_SECOND = 64L << 30;
    private static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules();
    /** Capabilities whose stream this save cannot carry or whose return path it does not answer. */
    private static final List<String> CAPABILITIES_OFF = List.of("return-path", "postcopy-ram", "xbzrle", "compress", "multifd",
            "block", "dirty-bitmaps", "x-ignore-shared", "postcopy-preempt", "release-ram", "background-snapshot", "mapped-ram",
            "switchover-ack", "zero-blocks", "x-colo", "auto-converge");

    /**
     * @param estimator  {@link Estimator#DIRTY} for a live save that estimates the working set; {@link Estimator#NONE}
     *                   otherwise (the estimators that need other machinery run around the save, not inside it)
     * @param liveLimit  how long a live save lets the guest run before stopping it
     * @param guestFiles copy the guest's kernel and initrd into the image (a QEMU Thaw did not start: its files may lie
     *                   anywhere and change; Thaw's own guest builds are found by the restore where they are)
     * @param dropCachesAgent the guest agent's socket through which to drop the guest's clean page cache before the save
     *                   stops the guest ({@link PageCacheDrop}); null: the cache is saved as it is
     * @param diskReferences pages equal to a block of one of the guest's disk bases (raw, or qcow2 and its backing files) are
     *                   taken from it, not stored (format version 3 or 4; {@link DiskFreeze#indexDisks})
     */
    public record Options(ImageWriter.Options image, boolean keepRunning, Duration stallTimeout, Duration completionTimeout,
                          Estimator estimator, Duration liveLimit, boolean guestFiles, Path dropCachesAgent, boolean diskReferences) {
        public Options(ImageWriter.Options image, boolean keepRunning, Duration stallTimeout, Duration completionTimeout,
                       Estimator estimator, Duration liveLimit) {
            this(image, keepRunning, stallTimeout, completionTimeout, estimator, liveLimit, false, null, true);
        }

        public static Options defaults() {
            return new Options(ImageWriter.Options.defaults(), false, Duration.ofSeconds(60), Duration.ofSeconds(60), Estimator.NONE,
                    Duration.ofSeconds(30));
        }

        public Options withKeepRunning(boolean keep) {
            return new Options(image, keep, stallTimeout, completionTimeout, estimator, liveLimit, guestFiles, dropCachesAgent, diskReferences);
        }

        public Options withImage(ImageWriter.Options imageOptions) {
            return new Options(imageOptions, keepRunning, stallTimeout, completionTimeout, estimator, liveLimit, guestFiles, dropCachesAgent, diskReferences);
        }

        /**
         * How long each of the save's QMP calls waits for its answer: a QEMU that does not answer while its QMP connection is
         * open (its process lives: stopped by SIGSTOP or a debugger, a host stall) is slow, not dead, so as long as the save
         * waits for a stalled stream, and never less than an ordinary call. A QEMU that exits ends every call at once.
         */
        public Duration qmpTimeout() {
            return stallTimeout.compareTo(QmpClient.DEFAULT_TIMEOUT) > 0 ? stallTimeout : QmpClient.DEFAULT_TIMEOUT;
        }

        public Options withDirtyEstimator(Duration limit) {
            if (limit.isNegative() || limit.isZero()) throw new IllegalArgumentException("live limit: expected > 0, actual " + limit);
            return new Options(image, keepRunning, stallTimeout, completionTimeout, Estimator.DIRTY, limit, guestFiles, dropCachesAgent, diskReferences);
        }

        /** No estimate: a save of a guest whose estimate comes from elsewhere (a probe taken earlier, {@link #probeWorkingSet}). */
        public Options withoutEstimate() {
            return new Options(image, keepRunning, stallTimeout, completionTimeout, Estimator.NONE, liveLimit, guestFiles, dropCachesAgent, diskReferences);
        }

        public Options withGuestFiles(boolean copy) {
            return new Options(image, keepRunning, stallTimeout, completionTimeout, estimator, liveLimit, copy, dropCachesAgent, diskReferences);
        }

        /** Drops the guest's clean page cache through the agent on {@code agentSocket} before the guest is stopped. */
        public Options withDropCaches(Path agentSocket) {
            return new Options(image, keepRunning, stallTimeout, completionTimeout, estimator, liveLimit, guestFiles, agentSocket, diskReferences);
        }

        /** Whether pages equal to a block of a disk base (or its backing files) are taken from it (the default) or stored. */
        public Options withDiskReferences(boolean take) {
            return new Options(image, keepRunning, stallTimeout, completionTimeout, estimator, liveLimit, guestFiles, dropCachesAgent, take);
        }
    }

    /** Progress while the stream arrives. */
    public record Progress(long streamBytes, long pageCount, long elapsedNanos) {}

    /**
     * @param downtimeNanos  how long the guest was stopped for the save: with keep-running, from {@code stop} to {@code cont},
     *                       which comes before the image's commit (its fsyncs and rename); else from {@code stop} to the end of
     *                       the stream; for a live save QEMU's own {@code downtime}, or from Thaw's stop at the live limit
     * @param rounds         rounds QEMU sent RAM in (1 for a stopped guest)
     * @param workingSet     the estimate attached to the image, if the save made one
     * @param stoppedByLimit a live save that Thaw ended by stopping the guest at the live limit
     * @param recency        the dirty-bit recency behind the working set (its CLOCK order, per-page rounds)
     * @param sourceOverlays the new qcow2 overlays the guest's writable disks went on on (a guest that keeps running), one
     *                       per disk; its bases are the image's
     */
    public record Result(Path image, Manifest manifest, long streamBytes, long durationNanos, long downtimeNanos, boolean guestRunning,
                         int rounds, java.util.Optional<WorkingSet> workingSet, boolean stoppedByLimit,
                         java.util.Optional<DirtyRecency> recency, List<Path> sourceOverlays) {}

    private Saver() {}

    /** Saves; a SIGINT or SIGTERM meanwhile cancels the save and resumes a guest that was running (see InterruptGuard). */
    public static Result save(QmpClient qmp, VmConfig vmConfig, Path imageDir, Options options, Consumer<Progress> progress) {
        // First, while the guest runs: a guest whose cache cannot be dropped is refused before anything stopped it.
        Manifest.PageCacheDrop drop = options.dropCachesAgent() == null ? null
                : PageCacheDrop.drop(qmp, options.dropCachesAgent(), options.qmpTimeout());
        try (InterruptGuard guard = InterruptGuard.install(qmp, options.qmpTimeout())) {
            Result result = save(qmp, vmConfig, imageDir, options, progress, guard, drop);
            if (drop == null) return result;
            return new Result(result.image(), result.manifest(), result.streamBytes(), result.durationNanos() + drop.dropNanos(),
                    result.downtimeNanos(), result.guestRunning(), result.rounds(), result.workingSet(), result.stoppedByLimit(),
                    result.recency(), result.sourceOverlays());
        } catch (QmpException.Timeout e) {
            throw unanswered(qmp, options, e);
        }
    }

    /**
     * The dirty-bit estimate alone, from the probe a dirty save runs before its stopped save: a live migration that writes no
     * image, stopped at {@code liveLimit} when QEMU has not converged, after which the guest runs again. A cluster save takes it
     * for each member before its cut, while the members still run (the cut stops them all, and a stopped guest dirties nothing);
     * the stopped save that follows writes the image the estimate is attached to. A SIGINT or SIGTERM meanwhile cancels it and
     * resumes the guest, as a save's does.
     */
    public static WorkingSet probeWorkingSet(QmpClient qmp, VmConfig vmConfig, Duration liveLimit) {
        Options options = Options.defaults().withDirtyEstimator(liveLimit);
        try (InterruptGuard guard = InterruptGuard.install(qmp, options.qmpTimeout())) {
            if (!guard.wasRunning()) {
                throw new SaveException("dirty-bit probe of " + qmp.peer() + ": expected a running guest, actual a stopped one", null);
            }
            Result probe = transfer(qmp, vmConfig, null, options, p -> { }, guard, null);
            // A completed migration leaves the guest paused ("postmigrate"): it goes on, as before the probe.
            if (!qmp.queryStatus(options.qmpTimeout()).running()) qmp.cont(options.qmpTimeout());
            return probe.workingSet().orElseThrow();
        } catch (QmpException.Timeout e) {
            throw unanswered(qmp, options, e);
        }
    }

    private static Result save(QmpClient qmp, VmConfig vmConfig, Path imageDir, Options options, Consumer<Progress> progress,
                               InterruptGuard guard, Manifest.PageCacheDrop drop) {
        if (options.estimator() != Estimator.DIRTY || !guard.wasRunning()) {
            return transfer(qmp, vmConfig, imageDir, options, progress, guard, drop);
        }
        // The dirty-bit estimate comes from a live migration, the image from a stopped one: QEMU 7.2's live migration under
        // TCG was seen to send an inconsistent guest (about 1 in 25 here; QEMU's own restore of that stream panicked the
        // guest as Thaw's did), while a stopped guest cannot change under the stream. The probe writes no image.
        long started = System.nanoTime();
        Result probe = transfer(qmp, vmConfig, null, options.withKeepRunning(false), progress, guard, null);
        Result saved;
        try {
            // QEMU refuses to migrate a guest paused by a completed migration ("postmigrate"): let it run for the moment
            // between the two; the stopped save then stops it again (its image is of that later moment).
            if (!qmp.queryStatus(options.qmpTimeout()).running()) qmp.cont(options.qmpTimeout());
            // keepRunning passes on: a guest that goes on goes on on overlays taken at this save's stop.
            saved = transfer(qmp, vmConfig, imageDir, new Options(options.image(), options.keepRunning(), options.stallTimeout(),
                    options.completionTimeout(), Estimator.NONE, options.liveLimit(), options.guestFiles(), options.dropCachesAgent(),
                    options.diskReferences()),
                    progress, guard, drop);
        } catch (SaveException e) {
            throw failed(qmp, true, false, e); // the probe left the guest stopped: resume it, as any failed save does
        }
        WorkingSet ws = probe.workingSet().orElseThrow();
        Manifest manifest = WorkingSetWriter.attach(imageDir, ws);
        boolean running = saved.guestRunning();
        // The guest stood still twice: for the probe's last round (QEMU's stop, or Thaw's at the limit) and for the stopped save.
        long downtime = probe.downtimeNanos() + saved.downtimeNanos();
        return new Result(saved.image(), manifest, saved.streamBytes(), System.nanoTime() - started, downtime, running, probe.rounds(),
                java.util.Optional.of(ws), probe.stoppedByLimit(), probe.recency(), saved.sourceOverlays());
    }

    private static Result transfer(QmpClient qmp, VmConfig vmConfig, Path imageDir, Options options, Consumer<Progress> progress,
                                   InterruptGuard guard, Manifest.PageCacheDrop drop) {
        long started = System.nanoTime();
        Duration qmpTimeout = options.qmpTimeout();
        QmpClient.MigrationInfo before = qmp.queryMigrate(qmpTimeout);
        if (before.status().equals("active") || before.status().equals("setup") || before.status().startsWith("postcopy")) {
            throw new SaveException("cannot save " + qmp.peer() + ": a migration is already " + before.status(), null);
        }
        checkConfigurationMatches(qmp, vmConfig, qmpTimeout);
        prepareMigration(qmp, qmpTimeout);
        boolean wasRunning = qmp.queryStatus(qmpTimeout).running();
        Path socketDir;
        try {
            removeDeadSocketDirs(SOCKET_DIR_PARENT);
            socketDir = Files.createTempDirectory(SOCKET_DIR_PARENT, SOCKET_DIR_PREFIX + ProcessHandle.current().pid() + "-");
        } catch (IOException e) {
            throw new SaveException("cannot create a socket directory: " + e.getMessage(), e);
        }
        Path socket = socketDir.resolve("save.sock");
        AtomicLong streamBytes = new AtomicLong();
        AtomicLong pages = new AtomicLong();
        boolean migrationStarted = false;
        boolean live = options.estimator() == Estimator.DIRTY && wasRunning;
        AtomicLong stoppedByLimitAt = new AtomicLong(); // nanoTime, 0: not
        Thread limiter = null;
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
             // A probe (imageDir null) keeps only the rounds: no image is written.
             ImageWriter writer = imageDir == null ? null : ImageWriter.create(imageDir, options.image())) {
            server.bind(UnixDomainSocketAddress.of(socket));
            if (writer != null) guard.writing(writer.temporaryDirectory());
            if (writer != null && options.guestFiles()) {
                // Before the stop: copying the kernel and initrd (a disk-booted guest: none) and firmware costs the guest no downtime.
                for (var file : vmConfig.guestFiles()) writer.guestFile(file.getKey(), file.getValue());
            }
            // Before the stop too: indexing a disk not indexed before reads all of its data.
            List<DiskFreeze.Indexed> indexed = writer != null && vmConfig != null && options.diskReferences()
                    ? DiskFreeze.indexDisks(vmConfig.disks(), ThawPaths.cacheDir()) : List.of();
            long stopped = System.nanoTime();
            if (!live) qmp.stop(qmpTimeout);
            // The probe (no writer) leaves the disks alone: the image's disks are those of the stopped save.
            DiskFreeze.Frozen disks = writer == null || vmConfig == null ? DiskFreeze.Frozen.NONE
                    : DiskFreeze.atStop(qmp, vmConfig.disks(), options.keepRunning() && wasRunning, imageDir);
            if (!indexed.isEmpty()) writer.diskBases(DiskFreeze.frozenBases(indexed));
            qmp.migrate("unix:" + socket, qmpTimeout);
            migrationStarted = true;
            guard.check(); // after migrate: a signal before it found no migration to cancel
            if (live) limiter = Thread.ofVirtual().name("live-limit-" + qmp.peer()).start(() -> stopAtLimit(qmp, options.liveLimit(), qmpTimeout, stoppedByLimitAt));
            ImageSink sink = new ImageSink(writer, pages, live, options.stallTimeout(), qmp.peer());
            try (sink; SocketChannel channel = accept(server, qmpTimeout, qmp)) {
                InputStream in = new CountingInput(new BufferedInputStream(Channels.newInputStream(channel), 1 << 20), streamBytes);
                Thread reporter = Thread.ofVirtual().start(() -> report(progress, streamBytes, pages, started));
                try (StallWatchdog watchdog = new StallWatchdog("save-" + qmp.peer(), streamBytes::get, options.stallTimeout(), channel)) {
                    try {
                        SaveStreamParser.parse(in, sink);
                        sink.finish();
                    } catch (RuntimeException e) {
                        if (watchdog.stalled()) {
                            // Named, as a dead source is: the stream's end the watchdog caused says nothing of who stalled.
                            throw new SaveException("save of " + qmp.peer() + " failed: its QEMU sent no data for "
                                    + options.stallTimeout().toSeconds() + " s after " + streamBytes.get()
                                    + " stream bytes (stopped or stalled; the save waits that long for a slow QEMU)", e);
                        }
                        throw e;
                    }
                } finally {
                    reporter.interrupt();
                }
            }
            long downtime = System.nanoTime() - stopped;
            QmpClient.MigrationInfo done = awaitCompleted(qmp, options.completionTimeout(), qmpTimeout);
            // QEMU's downtime counts from its own stop; when Thaw stopped the guest at the limit, the guest stood still from then.
            long endOfStream = stopped + downtime;
            if (live) {
                downtime = stoppedByLimitAt.get() != 0 ? endOfStream - stoppedByLimitAt.get()
                        : done.raw().path("downtime").asLong(downtime / 1_000_000) * 1_000_000;
            }
            boolean running = false;
            if (options.keepRunning() && wasRunning) {
                // The whole stream is in this process and the disks are on the overlays taken at the stop: the guest goes on
                // now, not after the image's fsync and rename (0.2-0.5 s of a 512 MiB guest's downtime here). A commit that
                // fails then fails the save of a guest that runs, as a failed save leaves it.
                qmp.cont(qmpTimeout);
                running = true;
                if (!live) downtime = System.nanoTime() - stopped;
            }
            if (writer != null) writer.disks(disks.entries());
            if (writer != null) writer.pageCacheDrop(drop);
            // The manifest's disks, with their identities, are the truth about disks; the configuration records none.
            Manifest manifest = writer == null ? null : writer.commit(new Manifest.Source(qmp.qemuVersionText(), null, List.of(),
                    vmConfig == null ? null : JSON.valueToTree(vmConfig.withDisks(List.of()))), thawVersion());
            int rounds = sink.recency() == null ? 1 : sink.recency().roundCount();
            java.util.Optional<WorkingSet> ws = java.util.Optional.ofNullable(sink.recency()).map(DirtyRecency::estimate);
            progress.accept(new Progress(streamBytes.get(), pages.get(), System.nanoTime() - started));
            return new Result(imageDir == null ? null : imageDir.toAbsolutePath(), manifest, streamBytes.get(), System.nanoTime() - started, downtime, running, rounds,
                    ws, stoppedByLimitAt.get() != 0, java.util.Optional.ofNullable(sink.recency()), disks.sourceOverlays());
        } catch (IOException e) {
            throw failed(qmp, wasRunning, migrationStarted, new SaveException("save of " + qmp.peer() + " failed: " + e.getMessage(), e));
        } catch (QmpException.Timeout e) {
            throw failed(qmp, wasRunning, migrationStarted, unanswered(qmp, options, e));
        } catch (SaveException e) {
            throw failed(qmp, wasRunning, migrationStarted, e);
        } catch (RuntimeException e) {
            throw failed(qmp, wasRunning, migrationStarted, new SaveException("save of " + qmp.peer() + " failed after "
                    + streamBytes.get() + " stream bytes: " + e.getMessage(), e));
        } finally {
            if (limiter != null) limiter.interrupt();
            FileTrees.deleteQuietly(socketDir);
        }
    }

    /** Stops the guest if the live save is still running at the limit: without new writes QEMU's rounds converge. */
    private static void stopAtLimit(QmpClient qmp, Duration limit, Duration qmpTimeout, AtomicLong stoppedAt) {
        try {
            Thread.sleep(limit);
            String status = qmp.queryMigrate(qmpTimeout).status();
            if (status.equals("active") || status.equals("setup")) {
                long at = System.nanoTime();
                qmp.stop(qmpTimeout);
                stoppedAt.set(at);
            }
        } catch (InterruptedException e) {
            // the save ended first
        } catch (QmpException e) {
            // the save's own waits report a dead QEMU
        }
    }

    private static void report(Consumer<Progress> progress, AtomicLong bytes, AtomicLong pages, long started) {
        try {
            while (!Thread.currentThread().isInterrupted()) {
                Thread.sleep(250);
                progress.accept(new Progress(bytes.get(), pages.get(), System.nanoTime() - started));
            }
        } catch (InterruptedException e) {
            // save finished
        }
    }

    /**
     * Cancels the migration and resumes a guest that was running: a failed save changes nothing. A
     * source that is gone is named as the cause: its stream merely ended ("truncated") with it.
     */
    private static SaveException failed(QmpClient qmp, boolean wasRunning, boolean migrationStarted, SaveException e) {
        try {
            // On a closed connection these fail at once with ConnectionLost.
            if (migrationStarted) qmp.execute("migrate_cancel", null, Duration.ofSeconds(10));
            if (wasRunning) qmp.cont();
        } catch (QmpException.ConnectionLost gone) {
            return new SaveException("save of " + qmp.peer() + " failed: the source QEMU is gone (" + gone.getMessage() + "); "
                    + e.getMessage(), e);
        } catch (QmpException cleanup) {
            e.addSuppressed(cleanup);
        }
        return e;
    }

    /** A QMP call of the save unanswered for as long as the save waits for a slow QEMU, its process alive: named as stalled. */
    private static SaveException unanswered(QmpClient qmp, Options options, QmpException.Timeout e) {
        return new SaveException("save of " + qmp.peer() + " failed: its QEMU did not answer '" + e.command() + "' within "
                + options.qmpTimeout().toSeconds() + " s while its QMP connection stayed open (stopped or stalled; the save waits"
                + " that long for a slow QEMU)", e);
    }

    private static SocketChannel accept(ServerSocketChannel server, Duration timeout, QmpClient qmp) throws IOException {
        CompletableFuture<SocketChannel> accepted = CompletableFuture.supplyAsync(() -> {
            try {
                return server.accept();
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }, r -> Thread.ofVirtual().start(r));
        try {
            return accepted.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            server.close();
            throw new SaveException("QEMU did not connect to the save socket within " + timeout.toSeconds() + " s (migration status: "
                    + safeStatus(qmp) + ")", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SaveException("interrupted while waiting for QEMU to connect", e);
        } catch (java.util.concurrent.ExecutionException e) {
            throw new SaveException("accepting QEMU's connection failed: " + e.getCause(), e.getCause());
        }
    }

    private static String safeStatus(QmpClient qmp) {
        try {
            QmpClient.MigrationInfo info = qmp.queryMigrate();
            return info.status() + (info.raw().has("error-desc") ? ": " + info.raw().get("error-desc").asText() : "");
        } catch (QmpException e) {
            return "unknown (" + e.getMessage() + ")";
        }
    }

    private static QmpClient.MigrationInfo awaitCompleted(QmpClient qmp, Duration timeout, Duration qmpTimeout) {
        try {
            return qmp.awaitMigrationCompleted(timeout, qmpTimeout);
        } catch (QmpException.Timeout e) {
            throw new SaveException("QEMU did not report the migration completed within " + timeout.toSeconds()
                    + " s after the stream ended", e);
        } catch (QmpException.MigrationFailed e) {
            throw new SaveException("QEMU reports the migration " + e.status() + ": " + e.errorDescription(), e);
        }
    }

    /** Turns off every capability whose stream Thaw cannot store, and lifts the bandwidth limit. */
    private static void prepareMigration(QmpClient qmp, Duration qmpTimeout) {
        JsonNode caps = qmp.execute("query-migrate-capabilities", null, qmpTimeout);
        Map<String, Boolean> off = new java.util.LinkedHashMap<>();
        for (JsonNode c : caps) {
            String name = c.path("capability").asText();
            if (c.path("state").asBoolean() && CAPABILITIES_OFF.contains(name)) off.put(name, false);
        }
        if (!off.isEmpty()) qmp.migrateSetCapabilities(off, qmpTimeout);
        qmp.migrateSetParameters(Map.of("max-bandwidth", MAX_BANDWIDTH_BYTES_PER_SECOND), qmpTimeout);
    }

    /** The recorded launch configuration must describe this QEMU: same machine type and RAM size. */
    private static void checkConfigurationMatches(QmpClient qmp, VmConfig config, Duration qmpTimeout) {
        if (config == null) return;
        String type = qmp.execute("qom-get", JSON.createObjectNode().put("path", "/machine").put("property", "type"), qmpTimeout).asText();
        if (!type.equals(config.machineType() + "-machine")) {
            throw new SaveException("the VM's recorded configuration does not match it: expected machine type "
                    + config.machineType() + ", actual " + type.replaceFirst("-machine$", ""), null);
        }
        long ram = qmp.execute("query-memory-size-summary", null, qmpTimeout).path("base-memory").asLong();
        if (ram != config.memoryMiB() << 20) {
            throw new SaveException("the VM's recorded configuration does not match it: expected " + config.memoryMiB()
                    + " MiB of RAM, actual " + (ram >> 20) + " MiB", null);
        }
    }

    static String thawVersion() {
        String v = Saver.class.getPackage().getImplementationVersion();
        return v == null ? "development" : v;
    }

    private static final class CountingInput extends FilterInputStream {
        private final AtomicLong count;

        CountingInput(InputStream in, AtomicLong count) {
            super(in);
            this.count = count;
        }

        @Override
        public int read() throws IOException {
            int b = super.read();
            if (b >= 0) count.incrementAndGet();
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = super.read(b, off, len);
            if (n > 0) count.addAndGet(n);
            return n;
        }
    }
}
