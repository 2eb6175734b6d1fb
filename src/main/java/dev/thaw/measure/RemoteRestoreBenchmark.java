package dev.thaw.measure;

import dev.thaw.guest.GuestImage;
import dev.thaw.image.CheckpointImage;
import dev.thaw.objectstore.ImageCache;
import dev.thaw.objectstore.ImagePush;
import dev.thaw.objectstore.LazyPacks;
import dev.thaw.objectstore.ObjectStore;
import dev.thaw.objectstore.S3Location;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.RestoreTimeline;
import dev.thaw.restore.RestoreTraces;
import dev.thaw.util.FileTrees;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.UnaryOperator;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;

/**
 * ws restores from object storage against the same restore from the local image (issue 17, item 5). The demo guest is saved
 * once with the dirty,trace estimate ({@link TracedSave}) and pushed to an s3proxy of the bench's own ({@link S3ProxyProcess});
 * then, per repetition and interleaved (the order rotated), one ws (trace) restore from the local image with its files
 * evicted from the page cache, and one from {@code s3://} through a {@link DelayingRelay} per added round-trip time, each
 * from an empty object-store cache and a new client, the way {@code thaw restore s3://...} opens it ({@link ImageCache#open}
 * with its packs arriving). Each restored guest is observed as the bench observes ({@link AfterRestore}); the restore's demand
 * faults' service time comes from its event log ({@link RestoreTimeline}), the requests and bytes from the store's counts.
 */
public final class RemoteRestoreBenchmark {
    static final String BUCKET = "thaw-bench";
    static final RestoreMethod METHOD = RestoreMethod.WS_TRACE;

    /** @param addedRttMillis the round-trip times the relays add, one relay each (0: through a relay that adds none) */
    public record Config(Workload.Wsbench workload, List<Integer> addedRttMillis, int repetitions, Duration observe, Duration trace,
                         Duration liveLimit, Path workDir) {
        public Config {
            addedRttMillis = List.copyOf(addedRttMillis);
            for (int ms : addedRttMillis) {
                if (ms < 0 || ms > 1000) throw new IllegalArgumentException("added round-trip time: expected 0 to 1000 ms, actual " + ms);
            }
            if (repetitions < 1) throw new IllegalArgumentException("repetitions: expected at least 1, actual " + repetitions);
        }
    }

    /**
     * One restore; seconds from its start (for s3://: before the client was created).
     *
     * @param addedRttMillis  null for the restore from the local image
     * @param openSeconds     until the image was open (for s3://: the client, the cache's open, then the image's own checks)
     * @param clientSeconds   creating the S3 client (0 for local)
     * @param phases          where the cache's open went (null for local)
     * @param gets            GET requests (manifest, files, pack indexes, demand and background range GETs) until the end of the
     *                        observation; 0 for local
     * @param demandGets      of those, readers' demand range GETs
     * @param fetchedBytes    bytes fetched from the store until the end of the observation
     * @param demandBytes     of those, by readers' demands
     * @param packsWhole      every pack arrived and was checked by the end of the observation
     * @param failure         why it failed; null when it did not (then the other fields are 0 or null)
     */
    public record Sample(Integer addedRttMillis, int repetition, double openSeconds, double clientSeconds, ImageCache.Phases phases,
                         double runningSeconds, double completedSeconds, Double ttrSeconds, Double stallTtrSeconds, double relativeThroughput,
                         long demandFaults, double serviceMedianMicros, double serviceP99Micros, long gets, long demandGets, long fetchedBytes,
                         long demandBytes, boolean packsWhole, String failure) {
        public String label() {
            return addedRttMillis == null ? "local" : "s3:// +" + addedRttMillis + " ms";
        }
    }

    public record Report(String workload, long memoryMiB, long totalMiB, long wsMiB, String accel, String qemuVersion, int hostCpus,
                         double observeSeconds, double opsPerSecondBefore, long imageBytes, String workingSet, double pushSeconds,
                         List<Sample> samples) {}

    private RemoteRestoreBenchmark() {}

    public static Report run(Config config, GuestImage guestImage, QemuVersion qemu, Accel accel, PrintStream log)
            throws IOException, InterruptedException {
        Workload.Wsbench g = config.workload();
        Path image = config.workDir().resolve("remote-image-" + g.memoryMiB() + "M");
        Path cacheRoot = config.workDir().resolve("objectstore-cache");
        try (S3ProxyProcess server = S3ProxyProcess.start(config.workDir().resolve("s3proxy"), BUCKET, log)) {
            TracedSave.Result saved = TracedSave.save(g, image, "thaw-remote", guestImage, qemu, accel, config.observe(), config.liveLimit(),
                    config.trace(), false, log);
            S3Location.Image source = S3Location.parseImage(S3Location.SCHEME + BUCKET + "/bench/" + image.getFileName());
            long pushStart = System.nanoTime();
            try (ObjectStore store = new ObjectStore(settings(server.endpoint()), BUCKET)) {
                ImagePush.push(store, image, source.location(), source.name());
            }
            double pushSeconds = (System.nanoTime() - pushStart) / 1e9;
            log.printf("  pushed to %s in %.2f s%n", source, pushSeconds);
            Map<Integer, DelayingRelay> relays = new LinkedHashMap<>();
            List<Sample> samples = new ArrayList<>();
            try {
                for (int ms : config.addedRttMillis()) {
                    relays.put(ms, new DelayingRelay(new InetSocketAddress("127.0.0.1", server.endpoint().getPort()), Duration.ofMillis(ms),
                            Duration.ofSeconds(60)));
                }
                List<Integer> units = new ArrayList<>();
                units.add(null);
                units.addAll(config.addedRttMillis());
                for (int rep = 0; rep < config.repetitions(); rep++) {
                    for (int u = 0; u < units.size(); u++) {
                        Integer rtt = units.get((u + rep) % units.size()); // rotated, so that no run always goes first
                        Sample s = rtt == null ? runLocal(image, rep, saved.before(), config)
                                : runRemote(relays.get(rtt), rtt, source, cacheRoot, rep, saved.before(), config);
                        samples.add(s);
                        log.printf("  rep %d: %-16s %s%n", rep + 1, s.label(), s.failure() != null ? "FAILED: " + s.failure()
                                : String.format("opened %.2f s, running %.2f s, completed %.2f s, stall TTR %s, TTR %s, %d faults (service median %.0f us),"
                                        + " %d GETs (%d demand), %.1f MiB fetched%s", s.openSeconds(), s.runningSeconds(), s.completedSeconds(),
                                s.stallTtrSeconds() == null ? "never" : String.format("%.2f", s.stallTtrSeconds()),
                                s.ttrSeconds() == null ? "never" : String.format("%.2f", s.ttrSeconds()), s.demandFaults(), s.serviceMedianMicros(),
                                s.gets(), s.demandGets(), s.fetchedBytes() / 1048576.0, s.phases() == null ? ""
                                        : String.format(" (client %.3f s, %s)", s.clientSeconds(), s.phases().describe())));
                    }
                }
            } finally {
                for (DelayingRelay r : relays.values()) r.close();
                FileTrees.deleteQuietly(cacheRoot);
                FileTrees.deleteQuietly(image);
                FileTrees.deleteQuietly(RestoreTraces.directoryFor(image));
            }
            return new Report(g.label(), g.memoryMiB(), g.totalMiB(), g.wsMiB(), accel.qemuName(), qemu.text(),
                    Runtime.getRuntime().availableProcessors(), config.observe().toMillis() / 1e3, saved.before().opsPerSecond(), saved.imageBytes(),
                    saved.workingSet(), pushSeconds, List.copyOf(samples));
        }
    }

    static ObjectStore.Settings settings(URI endpoint) {
        return new ObjectStore.Settings(Optional.of(endpoint), Optional.of("us-east-1"), Optional.of(StaticCredentialsProvider.create(
                AwsBasicCredentials.create(S3ProxyProcess.ACCESS_KEY, S3ProxyProcess.SECRET_KEY))), ObjectStore.Settings.CONNECT_TIMEOUT,
                ObjectStore.Settings.READ_TIMEOUT);
    }

    private static Sample runLocal(Path image, int rep, Workload.Before before, Config config) throws InterruptedException {
        CacheState.EVICTED.prepare(List.of(image));
        long start = System.nanoTime();
        try (CheckpointImage img = CheckpointImage.open(image)) {
            double open = (System.nanoTime() - start) / 1e9;
            return restoreAndObserve(img, start, open, 0, null, null, null, rep, before, config);
        } catch (RuntimeException e) {
            return failed(null, rep, e);
        }
    }

    private static Sample runRemote(DelayingRelay relay, int rtt, S3Location.Image source, Path cacheRoot, int rep, Workload.Before before,
                                    Config config) throws InterruptedException {
        FileTrees.deleteQuietly(cacheRoot); // an empty cache: everything comes from the store
        long start = System.nanoTime();
        try (ObjectStore store = new ObjectStore(settings(relay.httpEndpoint()), BUCKET)) {
            double client = (System.nanoTime() - start) / 1e9;
            try (ImageCache.Opened opened = new ImageCache(cacheRoot, ImageCache.DEFAULT_MAX_BYTES).open(store, source, true);
                 CheckpointImage img = opened.openImage()) {
                double open = (System.nanoTime() - start) / 1e9;
                return restoreAndObserve(img, start, open, client, opened, store, rtt, rep, before, config);
            }
        } catch (RuntimeException e) {
            return failed(rtt, rep, e);
        }
    }

    /** The ws (trace) restore of an open image, as {@link MethodRestore} runs it, observed; the store's counts after the observation. */
    private static Sample restoreAndObserve(CheckpointImage img, long start, double openSeconds, double clientSeconds, ImageCache.Opened opened,
                                            ObjectStore store, Integer rtt, int rep, Workload.Before before, Config config)
            throws InterruptedException {
        String name = "thaw-remote-" + (rtt == null ? "local" : rtt + "ms");
        MethodRestore.Restored r = MethodRestore.restore(METHOD, new MethodRestore.Saved(null, new MethodRestore.Image.Open(img), null), name,
                UnaryOperator.identity(), x -> {});
        long lead = r.startedNanos() - start; // the opening, before the restore's own clock
        long running = lead + r.runningNanos();
        try (QemuVm vm = r.vm()) {
            AfterRestore after = AfterRestore.observe(vm, start, running, before.opsPerSecond(), before.unstalledShare(), config.observe());
            RestoreTimeline t = RestoreTimeline.of(r.postcopy().orElseThrow().events());
            LazyPacks.Counts c = opened == null ? null : opened.counts();
            long files = opened == null ? 0 : opened.report().fetchedBytes();
            return new Sample(rtt, rep, openSeconds, clientSeconds, opened == null ? null : opened.phases(), running / 1e9,
                    (lead + r.completedNanos()) / 1e9, after.ttrSeconds().orElse(null),
                    after.stallsReported() ? after.stallTtrSeconds().orElse(null) : null, after.relativeThroughput(), t.demandFaults(),
                    t.serviceMedianMicros(), t.serviceP99Micros(), store == null ? 0 : store.requests().gets(), c == null ? 0 : c.demandRequests(),
                    c == null ? 0 : files + c.openingBytes() + c.backgroundBytes() + c.demandBytes(), c == null ? 0 : c.demandBytes(),
                    c == null || c.done(), null);
        }
    }

    private static Sample failed(Integer rtt, int rep, RuntimeException e) {
        return new Sample(rtt, rep, 0, 0, null, 0, 0, null, null, 0, 0, 0, 0, 0, 0, 0, 0, false,
                Objects.requireNonNullElse(e.getMessage(), e.toString()));
    }

    /**
     * The table: per source, over the repetitions, min and median of the open and of the guest running, the medians of the
     * rest; then where the object store's opens went.
     */
    public static String markdown(Report r) {
        StringBuilder out = new StringBuilder(String.format("%s, %d MiB RAM, T=%d, W=%d, %s, %d host CPUs, image %d MiB, working set %s,"
                        + " observed %.0f s, ws (trace) restores, each from a cold cache (local: the image's files evicted; s3://: an empty"
                        + " object-store cache, a new client)%n%n", r.workload(), r.memoryMiB(), r.totalMiB(), r.wsMiB(), r.accel(), r.hostCpus(),
                r.imageBytes() >> 20, r.workingSet(), r.observeSeconds()));
        out.append("| source | runs | opened (s) min / median | guest running (s) min / median | completed (s) median | stall TTR (s) median"
                + " | TTR (s) median | work first " + Math.round(r.observeSeconds()) + " s vs before, median | demand faults median"
                + " | fault service (us) median / p99, medians | GETs (demand) median | MiB fetched median (demand) |\n");
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (String label : r.samples().stream().map(Sample::label).distinct().toList()) {
            List<Sample> runs = r.samples().stream().filter(s -> s.label().equals(label)).toList();
            List<Sample> ok = runs.stream().filter(s -> s.failure() == null).toList();
            String failed = ok.size() == runs.size() ? "" : " (" + (runs.size() - ok.size()) + " failed)";
            out.append(String.format("| %s | %d%s | %.2f / %.2f | %.2f / %.2f | %.2f | %s | %s | %.2fx | %.0f | %.0f / %.0f | %.0f (%.0f) | %.1f (%.2f) |%n",
                    label, runs.size(), failed, min(ok, Sample::openSeconds), median(ok, Sample::openSeconds), min(ok, Sample::runningSeconds),
                    median(ok, Sample::runningSeconds), median(ok, Sample::completedSeconds),
                    ttr(median(ok, s -> orInfinity(s.stallTtrSeconds())), r.observeSeconds()),
                    ttr(median(ok, s -> orInfinity(s.ttrSeconds())), r.observeSeconds()), median(ok, Sample::relativeThroughput),
                    median(ok, s -> s.demandFaults()), median(ok, Sample::serviceMedianMicros), median(ok, Sample::serviceP99Micros),
                    median(ok, s -> s.gets()), median(ok, s -> s.demandGets()), median(ok, s -> s.fetchedBytes() / 1048576.0),
                    median(ok, s -> s.demandBytes() / 1048576.0)));
        }
        out.append("\nWhere the s3:// opens went (median seconds): \n\n| source | client | lock | manifest | files | pack indexes | image's own checks"
                + " | every pack whole by the end |\n|---|---|---|---|---|---|---|---|\n");
        for (String label : r.samples().stream().filter(s -> s.addedRttMillis() != null).map(Sample::label).distinct().toList()) {
            List<Sample> ok = r.samples().stream().filter(s -> s.label().equals(label) && s.failure() == null).toList();
            out.append(String.format("| %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %d of %d |%n", label, median(ok, Sample::clientSeconds),
                    median(ok, s -> s.phases().lockSeconds()), median(ok, s -> s.phases().manifestSeconds()),
                    median(ok, s -> s.phases().filesSeconds()), median(ok, s -> s.phases().packIndexesSeconds()),
                    median(ok, s -> s.openSeconds() - s.clientSeconds() - s.phases().lockSeconds() - s.phases().manifestSeconds()
                            - s.phases().filesSeconds() - s.phases().packIndexesSeconds()),
                    ok.stream().filter(Sample::packsWhole).count(), ok.size()));
        }
        for (Sample s : r.samples()) {
            if (s.failure() != null) out.append(String.format("- %s, repetition %d failed: %s%n", s.label(), s.repetition() + 1, s.failure()));
        }
        return out.toString();
    }

    private static double min(List<Sample> s, java.util.function.ToDoubleFunction<Sample> f) {
        return SaveRestoreBenchmark.Report.min(s, f);
    }

    private static double median(List<Sample> s, java.util.function.ToDoubleFunction<Sample> f) {
        return SaveRestoreBenchmark.Report.median(s, f);
    }

    private static double orInfinity(Double seconds) {
        return seconds == null ? Double.POSITIVE_INFINITY : seconds;
    }

    private static String ttr(double seconds, double observed) {
        if (Double.isNaN(seconds)) return "-";
        return Double.isInfinite(seconds) ? "> " + Math.round(observed) : String.format("%.2f", seconds);
    }
}
