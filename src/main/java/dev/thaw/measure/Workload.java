package dev.thaw.measure;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestImage;
import dev.thaw.guest.RedisGuest;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * What a benchmarked guest runs and how its progress is measured: wsbench, which reports its own
 * progress on the console (guest side), or Redis, whose requests a client on the host times.
 */
public sealed interface Workload permits Workload.Wsbench, Workload.Redis {
    String label();

    long memoryMiB();

    /** The memory the workload fills (wsbench's T, Redis's dataset). */
    long totalMiB();

    /** The part of it the workload keeps touching (wsbench's W, the client's hot keys). */
    long wsMiB();

    /** Where the working set lies in that memory, as the bench's tables name it; null where the workload does not choose it. */
    default String layout() {
        return null;
    }

    VmConfig vmConfig(String name, GuestImage image, QemuVersion qemu, Accel accel);

    void awaitReady(QemuVm vm);

    /** The rate before the save (utilization 1.0), and for a client the latency of its requests. */
    record Before(double opsPerSecond, RequestLatency latency) {}

    Before before(QemuVm vm, Duration duration) throws InterruptedException;

    /** Keeps the workload busy while the guest is saved (Redis idles without a client); closing it stops that. */
    AutoCloseable keepBusy(QemuVm vm);

    /**
     * Starts watching a restore that begins now ({@code startedNanos}, System.nanoTime()) into a QEMU named {@code vmName}:
     * a client must be there the moment the guest runs, before the restore returns.
     */
    Observation observe(String vmName, long startedNanos, Before before);

    /** A restore being watched. */
    interface Observation extends AutoCloseable {
        /** How the restored guest ran, until {@code window} after it started running ({@code runningNanos} after the start). */
        AfterRestore finish(QemuVm vm, long runningNanos, Duration window) throws InterruptedException;

        /** Stops watching (a failed restore); nothing after {@link #finish}. */
        @Override
        void close();
    }

    record Wsbench(DemoGuest guest) implements Workload {
        public String label() {
            return "wsbench";
        }

        public long memoryMiB() {
            return guest.memoryMiB();
        }

        public long totalMiB() {
            return guest.totalMiB();
        }

        public long wsMiB() {
            return guest.wsMiB();
        }

        @Override
        public String layout() {
            return guest.layout().key();
        }

        public VmConfig vmConfig(String name, GuestImage image, QemuVersion qemu, Accel accel) {
            return guest.vmConfig(name, image, qemu, accel);
        }

        public void awaitReady(QemuVm vm) {
            DemoGuest.awaitReady(vm, vm.console().cursorFromStart(), DemoGuest.BOOT_TIMEOUT);
        }

        public Before before(QemuVm vm, Duration duration) throws InterruptedException {
            Throughput t = Throughput.of(DemoGuest.collectTicks(vm.console().cursor(), duration), Throughput.ONE_SECOND_NANOS);
            // The reference of every ratio: a source guest whose clock stopped keeping time (seen after repeated stop/cont under
            // TCG: its rate per guest second rose 5x between repetitions) is measured by the host's clock instead.
            if (t.guestClockRate() > 0 && (t.guestClockRate() < 0.8 || t.guestClockRate() > 1.25)) {
                org.slf4j.LoggerFactory.getLogger(Workload.class).warn("{}: the guest's clock ran {} s per host second while its rate"
                        + " before the save was measured: {} ops/s by its clock, {} by the host's; the host's is the reference", vm.name(),
                        String.format("%.2f", t.guestClockRate()), Math.round(t.opsPerSecond()), Math.round(t.opsPerHostSecond()));
                return new Before(t.opsPerHostSecond(), null);
            }
            return new Before(t.opsPerSecond(), null);
        }

        public AutoCloseable keepBusy(QemuVm vm) {
            return () -> {}; // wsbench runs on its own
        }

        public Observation observe(String vmName, long startedNanos, Before before) {
            return new Observation() {
                public AfterRestore finish(QemuVm vm, long runningNanos, Duration window) throws InterruptedException {
                    return AfterRestore.observe(vm, startedNanos, runningNanos, before.opsPerSecond(), window);
                }

                public void close() {}
            };
        }
    }

    record Redis(RedisGuest guest) implements Workload {
        static final Duration CLIENT_WARM_UP = Duration.ofSeconds(3);

        public String label() {
            return "redis";
        }

        public long memoryMiB() {
            return guest.memoryMiB();
        }

        public long totalMiB() {
            return guest.datasetMiB();
        }

        public long wsMiB() {
            return guest.hotMiB();
        }

        public VmConfig vmConfig(String name, GuestImage image, QemuVersion qemu, Accel accel) {
            return guest.vmConfig(name, image, qemu, accel);
        }

        public void awaitReady(QemuVm vm) {
            RedisGuest.awaitReady(vm, vm.console().cursorFromStart(), Duration.ofMinutes(5));
        }

        public Before before(QemuVm vm, Duration duration) {
            // The first seconds of a client measure its own warm-up (class loading, JIT), not the guest: left out.
            int port = RedisGuest.hostPort(vm);
            long warm = System.nanoTime();
            RedisLoad.run(port, guest.hotKeyCount(), warm, warm + CLIENT_WARM_UP.toNanos(), () -> false, warm);
            long start = System.nanoTime();
            RedisLoad.Result r = RedisLoad.run(port, guest.hotKeyCount(), start, start + duration.toNanos(), () -> false, start);
            if (r.requestCount() == 0) {
                throw new IllegalStateException(vm.name() + ": the Redis client completed no request in " + duration.toSeconds() + " s: "
                        + r.firstFailure());
            }
            return new Before(r.requestCount() / (duration.toNanos() / 1e9), r.latency());
        }

        public AutoCloseable keepBusy(QemuVm vm) {
            int port = RedisGuest.hostPort(vm);
            AtomicBoolean stop = new AtomicBoolean();
            Thread t = Thread.ofPlatform().daemon().name("redis-load-" + vm.name()).start(() ->
                    RedisLoad.run(port, guest.hotKeyCount(), System.nanoTime(), Long.MAX_VALUE, stop::get, System.nanoTime()));
            return () -> {
                stop.set(true);
                t.join(RedisLoad.SOCKET_TIMEOUT_MILLIS + 1000L);
            };
        }

        public Observation observe(String vmName, long startedNanos, Before before) {
            java.util.concurrent.atomic.AtomicLong deadline = new java.util.concurrent.atomic.AtomicLong(Long.MAX_VALUE);
            AtomicBoolean stop = new AtomicBoolean();
            java.util.concurrent.CompletableFuture<RedisLoad.Result> load = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                int port = awaitForwardedPort(vmName, stop);
                return port < 0 ? null : RedisLoad.run(port, guest.hotKeyCount(), startedNanos, Long.MAX_VALUE,
                        () -> stop.get() || System.nanoTime() >= deadline.get(), startedNanos);
            }, r -> Thread.ofPlatform().daemon().name("redis-observe-" + vmName).start(r));
            return new Observation() {
                public AfterRestore finish(QemuVm vm, long runningNanos, Duration window) throws InterruptedException {
                    long end = runningNanos + window.toNanos();
                    deadline.set(startedNanos + end);
                    RedisLoad.Result r;
                    try {
                        r = load.get(window.toMillis() + RedisLoad.SOCKET_TIMEOUT_MILLIS + 30_000L, java.util.concurrent.TimeUnit.MILLISECONDS);
                    } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                        throw new IllegalStateException(vm.name() + ": the Redis client failed: " + e, e);
                    }
                    if (!vm.isAlive()) throw new IllegalStateException("the restored guest died: " + vm.describeState());
                    if (r == null || r.requestCount() == 0) {
                        throw new IllegalStateException(vm.name() + ": the Redis client completed no request after the restore"
                                + (r == null ? "" : ": " + r.firstFailure()));
                    }
                    // Progress: completed requests per 10 ms, each bucket spread over its interval.
                    long bucket = 10_000_000L;
                    long[] counts = new long[(int) (end / bucket) + 1];
                    for (long t : r.doneNanos()) if (t > 0 && t <= end) counts[(int) ((t - 1) / bucket)]++;
                    List<Responsiveness.Progress> progress = new ArrayList<>();
                    for (int i = 0; i < counts.length; i++) {
                        if (counts[i] > 0) progress.add(new Responsiveness.Progress(i * bucket, (i + 1) * bucket, counts[i]));
                    }
                    return AfterRestore.of(new Responsiveness(progress, before.opsPerSecond(), runningNanos, end),
                            r.completedBetween(runningNanos, end) / (window.toNanos() / 1e9) / before.opsPerSecond(), end, r.latency());
                }

                public void close() {
                    stop.set(true);
                }
            };
        }

        /**
         * The port QEMU forwards to the guest's Redis, once that QEMU exists and its guest runs (QEMU's RESUME event); -1 when
         * stopped first. Connecting earlier would reach a user network whose state the incoming migration then replaces, and
         * the request would hang until the client's timeout: a wait the guest did not cause.
         */
        private static int awaitForwardedPort(String vmName, AtomicBoolean stop) {
            try {
                QemuVm vm = null;
                while (vm == null) {
                    if (stop.get()) return -1;
                    // Listed from its launch on; usable once its monitor answers.
                    vm = QemuVm.live(vmName).filter(v -> v.qmp() != null).orElse(null);
                    if (vm == null) Thread.sleep(5);
                }
                var events = vm.qmp().events().cursorFromStart();
                while (events.await(e -> e.name().equals("RESUME"), Duration.ofMillis(100)).isEmpty()) {
                    if (stop.get() || !vm.isAlive()) return -1;
                }
                while (!stop.get()) {
                    java.util.Set<Integer> ports = dev.thaw.util.ListeningPorts.of(vm.pid());
                    if (ports.size() == 1) return ports.iterator().next();
                    Thread.sleep(5);
                }
                return -1;
            } catch (InterruptedException e) {
                return -1;
            }
        }
    }
}
