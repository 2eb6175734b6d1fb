package dev.thaw.restore;

import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.HostForward;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpException;
import dev.thaw.qemu.VmConfig;
import dev.thaw.util.ThreadPriority;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.time.Duration;
import java.util.concurrent.CompletionService;
import java.util.concurrent.ExecutorCompletionService;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;

/**
 * {@code thaw restore IMAGE --clones N}: N guests from one image at once, each an independent {@link Restorer#restore} on a
 * thread of its own, as {@link RestoreIdentity} makes it (its own VM generation ID, user-networking host ports chosen by the
 * kernel, a derived MAC on its command line), on its own disk overlays ({@link RestoreDisks}, as every restore). They read
 * the same image files, so the host's page cache holds the image's pages once for all of them. All start or none: if one
 * fails, the others still restoring are interrupted, every QEMU that started is closed, and the error names the clone.
 */
public final class Clones {
    /** At most this many clones in one command (each a QEMU and a thread of this JVM). */
    public static final int MAX_COUNT = 64;

    /**
     * A NIC of a clone.
     *
     * @param name           QEMU's name for it ({@link RestoreIdentity.CommandLineNic#name}), by which QMP reports it
     * @param type           its device type
     * @param guestMac       the MAC its running guest uses: the saved one, which QEMU migrates (a virtio-net NIC's as QMP's
     *                       {@code query-rx-filter} reports it; e1000 and e1000e have no receive filter QMP reports: the saved
     *                       configuration's)
     * @param commandLineMac the MAC on its command line ({@code default} where QEMU picks it)
     * @param resetTakesCommandLineMac whether the guest takes {@code commandLineMac} when it resets the NIC; an e1000 keeps the
     *                       saved MAC ({@link RestoreIdentity.CommandLineNic#resetTakesCommandLineMac})
     */
    public record Nic(String name, String type, String guestMac, String commandLineMac, boolean resetTakesCommandLineMac) {}

    /**
     * One running clone. The caller owns its QEMU ({@code outcome.vm()}).
     *
     * @param vmGenerationId  the GUID QEMU reports (QMP {@code query-vm-generation-id}); empty when the saved guest had no vmgenid
     * @param forwards        its user networking's forwards as QEMU bound them
     */
    public record Clone(int index, String name, Restorer.Outcome outcome, Optional<String> vmGenerationId, List<Nic> nics,
                        List<HostForward> forwards) {}

    private Clones() {}

    /** Refuses a clone count outside 1..{@link #MAX_COUNT}. */
    public static void requireCount(int count) {
        if (count < 1 || count > MAX_COUNT) {
            throw new IllegalArgumentException("--clones: expected 1 to " + MAX_COUNT + ", actual " + count);
        }
    }

    /** The clones' names: {@code NAME-1} to {@code NAME-N}, checked as every VM name is. */
    public static List<String> names(String baseName, int count) {
        requireCount(count);
        List<String> names = new ArrayList<>();
        for (int i = 1; i <= count; i++) names.add(baseName + "-" + i);
        String longest = names.getLast();
        if (!VmConfig.isValidName(longest)) {
            throw new IllegalArgumentException("--name with --clones " + count + ": expected names NAME-1..NAME-" + count + " of 1-64 of"
                    + " [A-Za-z0-9._-], actual '" + longest + "'");
        }
        return List.copyOf(names);
    }

    /**
     * What a caller should say about the clones' identity, from the image's saved configuration: a guest saved without a
     * vmgenid device keeps its generation ID, and a NIC keeps its saved MAC while it runs.
     */
    public static List<String> notes(VmConfig saved) {
        List<String> notes = new ArrayList<>();
        if (!RestoreIdentity.hasVmGenerationId(saved)) {
            notes.add("the image's guest has no vmgenid device (saved before Thaw booted its guests with one, or a QEMU started"
                    + " without -device vmgenid): the clones keep its VM generation ID, and a guest that reseeds its random number"
                    + " generator on a new one is not told");
        }
        List<RestoreIdentity.CommandLineNic> nics = RestoreIdentity.nics(saved);
        if (!nics.isEmpty()) {
            String reset = nics.stream().allMatch(RestoreIdentity.CommandLineNic::resetTakesCommandLineMac)
                    ? "the MAC on its command line takes over when the guest resets a NIC (a driver unbound and bound again)"
                    : nics.stream().noneMatch(RestoreIdentity.CommandLineNic::resetTakesCommandLineMac)
                    ? "an e1000 keeps the saved MAC even when the guest resets it (its EEPROM is migrated)"
                    : "the MAC on its command line takes over when the guest resets a virtio-net or e1000e NIC; an e1000 keeps the"
                    + " saved MAC (its EEPROM is migrated)";
            notes.add("each clone's NICs keep the saved MAC while the guest runs (QEMU migrates it); " + reset + "; each clone's"
                    + " user network is its own");
        }
        return List.copyOf(notes);
    }

    /**
     * The scheduling class of the background streams of {@code count} restores at once (one, or clones): SCHED_IDLE takes only
     * CPU no vCPU wants, so when the guests' vCPUs are at least the host's CPUs and compute, the rest of memory is starved until
     * the guests idle (two ws clones of a computing guest on this 2-CPU host had not completed after 180 s; at normal priority
     * they completed after 1.4 and 2.9 s).
     */
    public static ThreadPriority.Policy backgroundPriority(int count, int vcpusEach, int hostCpus) {
        return (long) count * vcpusEach >= hostCpus ? ThreadPriority.Policy.NORMAL : ThreadPriority.Policy.IDLE;
    }

    /**
     * Restores {@code count} clones of the image concurrently, as {@code NAME-1..NAME-N}, each in {@code mode}. Each restore's
     * own timeouts (a stream stalled 60 s, QEMU's {@code completed} after 120 s) bound the wait for it, and
     * {@link #ALL_RESTORED} all of them.
     *
     * @param progress told each clone's progress, prefixed with its name (from several threads at once)
     * @return the clones in order, all running
     * @throws RestoreException naming the first clone that failed, the others' failures suppressed in it; no QEMU left running
     */
    public static List<Clone> restore(CheckpointImage image, Restorer.Mode mode, String baseName, int count, WorkingSetChoice choice,
                                      UnaryOperator<PostcopyRestore.Options> tune, Consumer<String> progress) {
        return restore(image, mode, baseName, count, java.util.Optional.empty(), choice, tune, progress);
    }

    /** As above, each clone's disk overlays in a directory of its own under {@code diskDirectory} (empty: beside the image). */
    public static List<Clone> restore(CheckpointImage image, Restorer.Mode mode, String baseName, int count,
                                      java.util.Optional<java.nio.file.Path> diskDirectory, WorkingSetChoice choice,
                                      UnaryOperator<PostcopyRestore.Options> tune, Consumer<String> progress) {
        List<String> names = names(baseName, count);
        String imageId = image.manifest().imageId();
        int hostCpus = Runtime.getRuntime().availableProcessors();
        int vcpus = IncomingQemu.savedCpuCount(image);
        ThreadPriority.Policy priority = backgroundPriority(count, vcpus, hostCpus);
        if (priority == ThreadPriority.Policy.NORMAL && mode != Restorer.Mode.EAGER && mode != Restorer.Mode.MAPPED) {
            progress.accept(count + " clones of " + vcpus + " vCPU" + (vcpus == 1 ? "" : "s") + " on " + hostCpus
                    + " host CPUs: their background streams at normal priority (--background-priority idle to starve it instead)");
        }
        // The caller's tuning last: a priority it gives explicitly wins.
        UnaryOperator<PostcopyRestore.Options> tuned = o -> tune.apply(o.withBackgroundPriority(priority));
        return startAll(names, i -> start(image, mode, names.get(i), i + 1,
                RestoreIdentity.clone(imageId, i + 1, count).withDiskDirectory(diskDirectory), choice, tuned, progress),
                c -> c.outcome().vm().close());
    }

    /**
     * How long all clones may take to be running and their restores complete: generous, since each restore's own timeouts
     * catch a stalled stream; this bounds one that crawls without stalling.
     */
    static final Duration ALL_RESTORED = Duration.ofMinutes(15);
    /** How long clones still restoring get to end after they were interrupted (each closes its own QEMU as it fails). */
    static final Duration STOP_GRACE = Duration.ofSeconds(30);

    static <T> List<T> startAll(List<String> names, java.util.function.IntFunction<T> start, Consumer<T> close) {
        return startAll(names, start, close, ALL_RESTORED);
    }

    /**
     * Runs {@code start(0..n-1)} at once, one platform thread each (a lazy or ws restore sets its own thread's scheduling
     * class, which on a virtual thread would be its carrier's), and waits for all, at most {@code deadline}. The first failure
     * (or the deadline) interrupts the ones still running; then the ones that started are {@code close}d and the first failure
     * in time is thrown (the cause: the others may have failed only because they were interrupted), named by its clone, with
     * the others' suppressed in it, in clone order.
     */
    static <T> List<T> startAll(List<String> names, java.util.function.IntFunction<T> start, Consumer<T> close, Duration deadline) {
        int count = names.size();
        ExecutorService pool = Executors.newThreadPerTaskExecutor(Thread.ofPlatform().daemon().name("restore-clone-", 1).factory());
        CompletionService<T> ended = new ExecutorCompletionService<>(pool);
        List<Future<T>> futures = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int index = i;
            futures.add(ended.submit(() -> start.apply(index)));
        }
        pool.shutdown();
        RestoreException stopped = null; // why the clones still restoring were interrupted, when it was not a clone's failure
        int firstFailed = -1;
        long end = System.nanoTime() + deadline.toNanos();
        try {
            for (int k = 0; k < count && firstFailed < 0; k++) {
                Future<T> f = ended.poll(Math.max(0, end - System.nanoTime()), TimeUnit.NANOSECONDS);
                if (f == null) {
                    stopped = new RestoreException("clones: expected all " + count + " restored within " + deadline.toSeconds()
                            + " s, actual " + k + " by then", null);
                    break;
                }
                if (f.state() == Future.State.FAILED) firstFailed = futures.indexOf(f);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            stopped = new RestoreException("interrupted while restoring clones", e);
        }
        if (stopped != null || firstFailed >= 0) {
            pool.shutdownNow();
            try {
                pool.awaitTermination(STOP_GRACE.toNanos(), TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        List<T> started = new ArrayList<>();
        RestoreException failure = stopped;
        List<RestoreException> others = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            Future<T> f = futures.get(i);
            String clone = "clone " + names.get(i) + " (" + (i + 1) + " of " + count + ")";
            RestoreException named = switch (f.state()) {
                case SUCCESS -> {
                    started.add(f.resultNow());
                    yield null;
                }
                case FAILED -> new RestoreException(clone + " failed: " + f.exceptionNow().getMessage(), f.exceptionNow());
                case CANCELLED -> new RestoreException(clone + " was cancelled", null);
                case RUNNING -> new RestoreException(clone + " was still restoring " + STOP_GRACE.toSeconds() + " s after it was"
                        + " interrupted: its QEMU is killed when Thaw exits", null);
            };
            if (named == null) continue;
            if (failure == null && i == firstFailed) failure = named;
            else others.add(named);
        }
        if (failure == null && !others.isEmpty()) failure = others.removeFirst();
        if (failure != null) {
            for (RestoreException other : others) failure.addSuppressed(other);
            for (T t : started) {
                try {
                    close.accept(t);
                } catch (RuntimeException e) {
                    failure.addSuppressed(e);
                }
            }
            throw failure;
        }
        return List.copyOf(started);
    }

    private static Clone start(CheckpointImage image, Restorer.Mode mode, String name, int index, RestoreIdentity identity,
                               WorkingSetChoice choice, UnaryOperator<PostcopyRestore.Options> tune, Consumer<String> progress) {
        Restorer.Outcome o = Restorer.restore(image, mode, name, identity, choice, tune, msg -> progress.accept(name + ": " + msg));
        QemuVm vm = o.vm();
        try {
            return new Clone(index, name, o, vmGenerationId(vm), nics(vm, IncomingQemu.savedConfig(image)), HostForward.of(vm.qmp()));
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    /** QEMU's own view of its vmgenid GUID; empty without the device. */
    static Optional<String> vmGenerationId(QemuVm vm) {
        if (!RestoreIdentity.hasVmGenerationId(vm.config())) return Optional.empty();
        return Optional.of(vm.qmp().execute("query-vm-generation-id").path("guid").asText());
    }

    /**
     * Each NIC of the clone by QEMU's name for it, with the MAC its running guest uses: a virtio-net NIC's receive filter's main
     * MAC; an e1000's or e1000e's (no receive filter QMP reports) the one in {@code saved}, which QEMU migrated.
     */
    static List<Nic> nics(QemuVm vm, VmConfig saved) {
        List<RestoreIdentity.CommandLineNic> running = RestoreIdentity.nics(vm.config());
        List<RestoreIdentity.CommandLineNic> before = RestoreIdentity.nics(saved);
        if (running.size() != before.size()) {
            throw new RestoreException(vm.name() + ": expected the " + before.size() + " NICs of the saved configuration, actual "
                    + running.size() + " on the restore's command line", null);
        }
        java.util.Map<String, String> filters = new java.util.HashMap<>();
        if (running.stream().anyMatch(n -> n.type().equals("virtio-net-pci"))) {
            try {
                for (JsonNode f : vm.qmp().execute("query-rx-filter")) filters.put(f.path("name").asText(), f.path("main-mac").asText());
            } catch (QmpException e) {
                throw new RestoreException(vm.name() + ": query-rx-filter failed: " + e.getMessage(), e);
            }
        }
        List<Nic> nics = new ArrayList<>();
        for (int i = 0; i < running.size(); i++) {
            RestoreIdentity.CommandLineNic n = running.get(i);
            String guestMac = before.get(i).mac();
            if (n.type().equals("virtio-net-pci")) {
                guestMac = filters.get(n.name());
                if (guestMac == null) {
                    throw new RestoreException(vm.name() + ": expected query-rx-filter to report the NIC " + n.name() + ", actual only "
                            + new java.util.TreeSet<>(filters.keySet()), null);
                }
            }
            nics.add(new Nic(n.name(), n.type(), guestMac, n.mac(), n.resetTakesCommandLineMac()));
        }
        return List.copyOf(nics);
    }
}
