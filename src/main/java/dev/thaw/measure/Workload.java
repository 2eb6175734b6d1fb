package dev.thaw.measure;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestImage;
import dev.thaw.guest.PostgresGuest;
import dev.thaw.guest.RedisGuest;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import java.time.Duration;
import java.util.List;

/**
 * What a benchmarked guest runs and how its progress is measured: wsbench, which reports its own
 * progress on the console (guest side), or Redis or PostgreSQL, whose requests a client on the host times.
 */
public sealed interface Workload permits Workload.Wsbench, Workload.Redis, Workload.Postgres {
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
    /**
     * The source before the save: the reference of every ratio after the restore.
     *
     * @param unstalledShare the share of its time wsbench did not report stalled (the stall TTR's reference); NaN where not
     *                       reported
     */
    record Before(double opsPerSecond, RequestLatency latency, double unstalledShare) {
        Before(double opsPerSecond, RequestLatency latency) {
            this(opsPerSecond, latency, Double.NaN);
        }
    }

    Before before(QemuVm vm, Duration duration) throws InterruptedException;

    /**
     * What {@code --check-memory} compares ({@link #check}), as the tables name it; null where the workload has no check (Redis).
     */
    default String checked() {
        return null;
    }

    /**
     * The check {@code --check-memory} runs on the source before each save ({@code reference} null, no client running) and in
     * every restored guest after its observation (with the source's line): one line, equal to the source's when the restored
     * guest has what was saved.
     */
    default String check(QemuVm vm, String reference) {
        throw new UnsupportedOperationException(label() + ": no check of a restored guest");
    }

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
            List<dev.thaw.guest.WsbenchTick> ticks = DemoGuest.collectTicks(vm.console().cursor(), duration);
            Throughput t = Throughput.of(ticks, Throughput.ONE_SECOND_NANOS);
            double unstalled = Responsiveness.unstalledShare(ticks);
            // The reference of every ratio: a source guest whose clock stopped keeping time (seen after repeated stop/cont under
            // TCG: its rate per guest second rose 5x between repetitions) is measured by the host's clock instead.
            if (t.guestClockRate() > 0 && (t.guestClockRate() < 0.8 || t.guestClockRate() > 1.25)) {
                org.slf4j.LoggerFactory.getLogger(Workload.class).warn("{}: the guest's clock ran {} s per host second while its rate"
                        + " before the save was measured: {} ops/s by its clock, {} by the host's; the host's is the reference", vm.name(),
                        String.format("%.2f", t.guestClockRate()), Math.round(t.opsPerSecond()), Math.round(t.opsPerHostSecond()));
                return new Before(t.opsPerHostSecond(), null, unstalled);
            }
            return new Before(t.opsPerSecond(), null, unstalled);
        }

        public AutoCloseable keepBusy(QemuVm vm) {
            return () -> {}; // wsbench runs on its own
        }

        @Override
        public String checked() {
            return "memory";
        }

        /** The checksum of the pages of wsbench's region it never writes after its fill, through the guest's agent. */
        @Override
        public String check(QemuVm vm, String reference) {
            try (dev.thaw.guest.GuestAgent agent = dev.thaw.guest.GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                return agent.memsumCold().checksumHex();
            }
        }

        public Observation observe(String vmName, long startedNanos, Before before) {
            return new Observation() {
                public AfterRestore finish(QemuVm vm, long runningNanos, Duration window) throws InterruptedException {
                    return AfterRestore.observe(vm, startedNanos, runningNanos, before.opsPerSecond(), before.unstalledShare(), window);
                }

                public void close() {}
            };
        }
    }

    record Redis(RedisGuest guest) implements Workload {
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

        private HostClient client() {
            return (port, origin, deadline, stop) -> RedisLoad.run(port, guest.hotKeyCount(), origin, deadline, stop, origin);
        }

        public Before before(QemuVm vm, Duration duration) {
            return HostClient.before(vm, RedisGuest.hostPort(vm), duration, "Redis", client());
        }

        public AutoCloseable keepBusy(QemuVm vm) {
            return HostClient.keepBusy(vm, RedisGuest.hostPort(vm), "redis", client(), RedisLoad.SOCKET_TIMEOUT_MILLIS);
        }

        public Observation observe(String vmName, long startedNanos, Before before) {
            return HostClient.observe(vmName, startedNanos, before, "Redis", "redis", client(), RedisLoad.SOCKET_TIMEOUT_MILLIS);
        }
    }

    /**
     * PostgreSQL on the guest's own disk ({@link PostgresGuest}, booted on {@code disk}), timed by {@link PostgresLoad}: each
     * request an insert of a new row or a checked read of one the client wrote. It has no dataset or working set of a chosen
     * size: the bench's T and W are 0.
     */
    record Postgres(PostgresGuest guest, java.nio.file.Path disk) implements Workload {
        public String label() {
            return "postgres";
        }

        public long memoryMiB() {
            return guest.memoryMiB();
        }

        public long totalMiB() {
            return 0;
        }

        public long wsMiB() {
            return 0;
        }

        public VmConfig vmConfig(String name, GuestImage image, QemuVersion qemu, Accel accel) {
            return guest.vmConfig(name, image, disk, qemu, accel);
        }

        public void awaitReady(QemuVm vm) {
            PostgresGuest.awaitReady(vm, vm.console().cursorFromStart(), PostgresGuest.BOOT_TIMEOUT);
            try {
                PostgresLoad.createTable(PostgresGuest.hostPort(vm));
            } catch (java.sql.SQLException e) {
                throw new IllegalStateException(vm.name() + ": cannot create the client's table: " + e.getMessage(), e);
            }
        }

        /** Each run inserts from a first id of its own (the time it starts, in ns): runs on one source never collide. */
        private static HostClient client() {
            return (port, origin, deadline, stop) -> PostgresLoad.run(port, System.nanoTime(), new long[0], origin, deadline, stop, origin);
        }

        public Before before(QemuVm vm, Duration duration) {
            return HostClient.before(vm, PostgresGuest.hostPort(vm), duration, "PostgreSQL", client());
        }

        public AutoCloseable keepBusy(QemuVm vm) {
            return HostClient.keepBusy(vm, PostgresGuest.hostPort(vm), "postgres", client(), PostgresLoad.SOCKET_TIMEOUT_MILLIS);
        }

        @Override
        public String checked() {
            return "rows and pg_amcheck";
        }

        /**
         * The client's rows committed before the save (every insert acknowledged by then among them) and pg_amcheck: on the source,
         * how many rows the table holds, the largest id and an MD5 of them all; in a restored guest, the same of its rows up to that
         * id (the clients' later rows have larger ids: each run's first id is the time it starts, in ns, and it inserts about a
         * thousand a second). Then pg_amcheck of the database, every heap and B-tree index with each index against its heap.
         */
        @Override
        public String check(QemuVm vm, String reference) {
            int port = PostgresGuest.hostPort(vm);
            try {
                PostgresLoad.Rows rows = PostgresLoad.rowsUpTo(port, reference == null ? Long.MAX_VALUE : PostgresLoad.maxIdOf(reference));
                PostgresGuest.Amcheck amcheck = PostgresGuest.amcheck(port, Duration.ofMinutes(3));
                return PostgresLoad.checkLine(rows, amcheck);
            } catch (java.sql.SQLException e) {
                return "the rows could not be read: " + e.getMessage();
            }
        }

        public Observation observe(String vmName, long startedNanos, Before before) {
            return HostClient.observe(vmName, startedNanos, before, "PostgreSQL", "postgres", client(), PostgresLoad.SOCKET_TIMEOUT_MILLIS);
        }
    }
}
