package dev.thaw.measure;

import dev.thaw.qemu.QemuVm;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

/**
 * A closed-loop client on the host of an application guest (Redis, PostgreSQL), as the bench runs it: before the save, while the
 * guest is saved, and after a restore, from the moment the restored guest runs.
 */
@FunctionalInterface
interface HostClient {
    /** The first seconds of a client measure its own warm-up (class loading, JIT), not the guest: left out. */
    Duration WARM_UP = Duration.ofSeconds(3);

    /** Runs against host port {@code port} until {@code deadlineNanos} (System.nanoTime) or {@code stop}; times from {@code originNanos}. */
    ClientRequests run(int port, long originNanos, long deadlineNanos, BooleanSupplier stop);

    /** The rate and latency before the save, after a warm-up. */
    static Workload.Before before(QemuVm vm, int port, Duration duration, String app, HostClient client) {
        long warm = System.nanoTime();
        client.run(port, warm, warm + WARM_UP.toNanos(), () -> false);
        long start = System.nanoTime();
        ClientRequests r = client.run(port, start, start + duration.toNanos(), () -> false);
        if (r.requestCount() == 0) {
            throw new IllegalStateException(vm.name() + ": the " + app + " client completed no request in " + duration.toSeconds() + " s: "
                    + r.firstFailure());
        }
        return new Workload.Before(r.requestCount() / (duration.toNanos() / 1e9), r.latency());
    }

    /** Keeps the guest busy while it is saved; closing it stops the client. */
    static AutoCloseable keepBusy(QemuVm vm, int port, String threadName, HostClient client, long socketTimeoutMillis) {
        AtomicBoolean stop = new AtomicBoolean();
        Thread t = Thread.ofPlatform().daemon().name(threadName + "-load-" + vm.name()).start(() ->
                client.run(port, System.nanoTime(), Long.MAX_VALUE, stop::get));
        return () -> {
            stop.set(true);
            t.join(socketTimeoutMillis + 1000L);
        };
    }

    /** Watches a restore into a QEMU named {@code vmName} that begins at {@code startedNanos}: the client starts once the guest runs. */
    static Workload.Observation observe(String vmName, long startedNanos, Workload.Before before, String app, String threadName,
                                        HostClient client, long socketTimeoutMillis) {
        AtomicLong deadline = new AtomicLong(Long.MAX_VALUE);
        AtomicBoolean stop = new AtomicBoolean();
        CompletableFuture<ClientRequests> load = CompletableFuture.supplyAsync(() -> {
            int port = awaitForwardedPort(vmName, stop);
            return port < 0 ? null : client.run(port, startedNanos, Long.MAX_VALUE, () -> stop.get() || System.nanoTime() >= deadline.get());
        }, r -> Thread.ofPlatform().daemon().name(threadName + "-observe-" + vmName).start(r));
        return new Workload.Observation() {
            public AfterRestore finish(QemuVm vm, long runningNanos, Duration window) throws InterruptedException {
                long end = runningNanos + window.toNanos();
                deadline.set(startedNanos + end);
                ClientRequests r;
                try {
                    r = load.get(window.toMillis() + socketTimeoutMillis + 30_000L, TimeUnit.MILLISECONDS);
                } catch (ExecutionException | TimeoutException e) {
                    throw new IllegalStateException(vm.name() + ": the " + app + " client failed: " + e, e);
                }
                if (!vm.isAlive()) throw new IllegalStateException("the restored guest died: " + vm.describeState());
                if (r == null || r.requestCount() == 0) {
                    throw new IllegalStateException(vm.name() + ": the " + app + " client completed no request after the restore"
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
     * The port QEMU forwards to the guest's service, once that QEMU exists and its guest runs (QEMU's RESUME event); -1 when
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
