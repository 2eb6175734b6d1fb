package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.guest.PostgresGuest;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpEvent;
import dev.thaw.restore.Clones;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import dev.thaw.save.Saver;
import dev.thaw.testing.TestHost;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 14's realistic guest with a disk, against the real QEMU: PostgreSQL 15 on the guest's own Debian root disk, a JDBC
 * client on the host inserting and reading rows while the guest is saved with keep-running; then the source and two clones
 * (lazy restores of that image, whose pages read from the disk are references into its qcow2 chain) run on. Every insert acknowledged before the guest stopped for the save is in each clone, each
 * clone's database passes pg_amcheck, the rows the source wrote after the save are in neither clone, and a row written in one
 * clone after the restore is in neither the other clone nor the source.
 */
class PostgresClonesTest {
    static final PostgresGuest GUEST = new PostgresGuest(512);
    private static final Duration AMCHECK_TIMEOUT = Duration.ofMinutes(2);

    @Test
    void acknowledgedRowsAreInTheSourceAndTwoClonesEachIntactAndTheirLaterWritesTheirOwn(@TempDir Path dir) throws Exception {
        Path image = dir.resolve("image");
        Path disk = PostgresGuest.bootDisk(TestHost.postgresDisk(), dir.resolve("disks"), "thaw-test-pg-src");
        try (QemuVm source = QemuVm.launch(GUEST.vmConfig("thaw-test-pg-src", TestHost.guest(), disk, TestHost.qemu(), TestHost.accel()))) {
            long launched = System.nanoTime();
            PostgresGuest.awaitReady(source, source.console().cursorFromStart(), PostgresGuest.BOOT_TIMEOUT);
            System.err.printf("postgres guest: ready %.1f s after QEMU's launch%n", (System.nanoTime() - launched) / 1e9);
            int port = PostgresGuest.hostPort(source);
            PostgresLoad.createTable(port);

            // Before: rows inserted and read back over JDBC.
            long t0 = System.nanoTime();
            PostgresLoad.Result before = PostgresLoad.run(port, 1, new long[0], t0, t0 + Duration.ofSeconds(3).toNanos(), () -> false, 1);
            assertThat(before.failures()).as(String.valueOf(before.firstFailure())).isZero();
            assertThat(before.ackedIds()).as("inserts acknowledged before the save").isNotEmpty();
            assertThat(PostgresLoad.missing(port, before.ackedIds())).isEmpty();

            // The client goes on while the guest is saved and runs on, on the overlay the save gave it.
            AtomicBoolean stop = new AtomicBoolean();
            long t1 = System.nanoTime();
            CompletableFuture<PostgresLoad.Result> load = CompletableFuture.supplyAsync(() -> PostgresLoad.run(port, 1_000_000,
                    before.ackedIds(), t1, Long.MAX_VALUE, stop::get, 2), r -> Thread.ofPlatform().daemon().start(r));
            Thread.sleep(1_000);
            Saver.Result saved = Saver.save(source.qmp(), source.config(), image, Saver.Options.defaults().withKeepRunning(true), p -> {});
            assertThat(saved.guestRunning()).isTrue();
            assertThat(saved.manifest().disks()).singleElement().satisfies(d -> assertThat(Path.of(d.base())).isEqualTo(disk));
            // The pages it read from its disk are references into the overlay and the built disk below it (format 4), which
            // the clones' lazy restores read back from those files.
            assertThat(saved.manifest().formatVersion()).isEqualTo(dev.thaw.image.Manifest.VERSION_WITH_BACKING_REFS);
            assertThat(saved.manifest().stats().diskReferenceBytes()).as("pages taken from the disk's qcow2 chain").isGreaterThan(8L << 20);
            List<QmpEvent> events = source.qmp().events().snapshot();
            long stoppedAt = events.stream().filter(e -> e.is("STOP")).mapToLong(QmpEvent::receivedNanos).min().orElseThrow();
            long resumedAt = events.stream().filter(e -> e.is("RESUME") && e.receivedNanos() > stoppedAt).mapToLong(QmpEvent::receivedNanos)
                    .min().orElseThrow();
            Thread.sleep(2_000);
            stop.set(true);
            PostgresLoad.Result during = load.get(60, TimeUnit.SECONDS);
            System.err.printf("postgres: save with keep-running %.2f s (downtime %.2f s); rows acknowledged: %d before it, %d while it"
                            + " ran before the stop, %d sent after the guest resumed; %d failed or timed-out requests; latency around the"
                            + " save %s%n", saved.durationNanos() / 1e9, saved.downtimeNanos() / 1e9, before.ackedIds().length,
                    during.ackedBefore(stoppedAt).length, afterResume(during, resumedAt).length, during.failures(), during.latency());

            // Acknowledged before the guest stopped: committed in the saved memory and disk. Sent after the guest resumed (the
            // acknowledgement of the insert before it came later): written on the source's new overlay only.
            long[] mustHave = LongStream.concat(Arrays.stream(before.ackedIds()), Arrays.stream(during.ackedBefore(stoppedAt))).toArray();
            long[] afterSave = afterResume(during, resumedAt);
            assertThat(during.ackedBefore(stoppedAt)).as("inserts acknowledged while the save ran, before the stop").isNotEmpty();
            assertThat(afterSave).as("inserts the source acknowledged after it resumed").isNotEmpty();
            assertThat(PostgresLoad.missing(port, mustHave)).as("the source holds every acknowledged row").isEmpty();
            assertThat(PostgresLoad.missing(port, during.ackedIds())).isEmpty();

            List<Clones.Clone> clones;
            try (CheckpointImage img = CheckpointImage.open(image)) {
                clones = Clones.restore(img, Restorer.Mode.LAZY, "thaw-test-pg-clone", 2, WorkingSetChoice.defaults(), o -> o, s -> {});
            }
            try {
                int[] ports = clones.stream().mapToInt(c -> c.forwards().getFirst().hostPort()).toArray();
                for (int i = 0; i < clones.size(); i++) {
                    Clones.Clone c = clones.get(i);
                    assertThat(c.outcome().vm().config().disks()).singleElement().satisfies(d -> assertThat(d.file()).isNotEqualTo(disk));
                    assertThat(PostgresLoad.missing(ports[i], mustHave)).as(c.name() + ": every row acknowledged before the stop").isEmpty();
                    assertThat(PostgresLoad.missing(ports[i], afterSave)).as(c.name() + ": none of the source's rows after the save")
                            .containsExactly(afterSave);
                    PostgresGuest.Amcheck check = PostgresGuest.amcheck(ports[i], AMCHECK_TIMEOUT);
                    System.err.printf("%s: running after %.2f s; pg_amcheck exit %d, %d relations checked%n", c.name(),
                            c.outcome().runningSeconds(), check.exitStatus(), check.output().lines().filter(l -> l.contains(": checking ")).count());
                    assertThat(check.passed()).as(c.name() + ": pg_amcheck: " + check.output()).isTrue();
                    assertThat(check.output()).as("pg_amcheck checked the client's table and its index")
                            .contains("checking heap table \"postgres.public." + PostgresLoad.TABLE + "\"")
                            .contains("checking btree index \"postgres.public." + PostgresLoad.TABLE + "_pkey\"");
                }

                // After the restore: latency in clone 1 (its reads among the rows saved), and a row of its own.
                long t2 = System.nanoTime();
                PostgresLoad.Result after = PostgresLoad.run(ports[0], 2_000_000, mustHave, t2, t2 + Duration.ofSeconds(3).toNanos(),
                        () -> false, 3);
                System.err.printf("postgres latency before the save %s, in clone 1 after the restore %s%n", before.latency(), after.latency());
                assertThat(after.ackedIds()).as("inserts acknowledged by clone 1").isNotEmpty();
                assertThat(PostgresLoad.missing(ports[0], after.ackedIds())).isEmpty();
                assertThat(PostgresLoad.missing(ports[1], after.ackedIds())).as("clone 1's rows in clone 2").containsExactly(after.ackedIds());
                assertThat(PostgresLoad.missing(port, after.ackedIds())).as("clone 1's rows in the source").containsExactly(after.ackedIds());
                PostgresLoad.insert(ports[1], 3_000_000);
                assertThat(PostgresLoad.missing(ports[1], new long[] {3_000_000})).isEmpty();
                assertThat(PostgresLoad.missing(ports[0], new long[] {3_000_000})).as("clone 2's row in clone 1").containsExactly(3_000_000);
                assertThat(PostgresLoad.missing(port, new long[] {3_000_000})).as("clone 2's row in the source").containsExactly(3_000_000);
            } finally {
                for (Clones.Clone c : clones) c.outcome().vm().close();
            }
        }
        assertThat(QemuVm.live()).isEmpty();
    }

    /** The acknowledged inserts sent after the guest resumed: the client sends each after the one before it was acknowledged. */
    private static long[] afterResume(PostgresLoad.Result r, long resumedAtNanos) {
        return java.util.stream.IntStream.range(1, r.ackedIds().length).filter(i -> r.ackedAtNanos()[i - 1] > resumedAtNanos)
                .mapToLong(i -> r.ackedIds()[i]).toArray();
    }
}
