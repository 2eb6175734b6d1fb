package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A store shared by several images: no image loses a pack another image's change made garbage. */
class SharedStoreTest {
    static WorkingSet everyStoredPage(SyntheticGuest guest) {
        List<PageRef> pages = new ArrayList<>();
        for (int p = 0; p < guest.pages[0].length; p++) if (guest.pages[0][p] != null) pages.add(new PageRef(0, p));
        return WorkingSet.of(Estimator.TRACE, pages, pages.size(), "every stored page");
    }

    /**
     * Image B, saved into A's store, finds its pages in A's working-set pack; replacing A's working set must not take
     * that pack from B.
     */
    @Test
    void reattachingAWorkingSetKeepsThePacksOtherImagesUse(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("reattachingAWorkingSetKeepsThePacksOtherImagesUse"), 1, 16, 300, 0.2, 0.1);
        // A save's index takes each content from the first pack in name order. A's base pack should sort late (new
        // stores until it does), then attach until A's working-set pack sorts before it, so B's pages come from there.
        ImageWriter.Options options;
        Path a;
        String basePack;
        int store = 0;
        do {
            options = new ImageWriter.Options(Codec.ZSTD, 1, 16, dir.resolve("store" + store));
            a = dir.resolve("a" + store++);
            basePack = ImageRoundTripTest.saveInto(a, guest, options).storage().packs().getFirst().file();
        } while (basePack.compareTo("pack-8") < 0 && store < 64);
        Path b = dir.resolve("b");
        Manifest withWs = WorkingSetWriter.attach(a, everyStoredPage(guest));
        for (int tries = 0; withWs.storage().packs().getLast().file().compareTo(basePack) > 0 && tries < 64; tries++) {
            withWs = WorkingSetWriter.attach(a, everyStoredPage(guest));
        }
        Manifest second = ImageRoundTripTest.saveInto(b, guest, options);
        assertThat(second.storage().packs()).extracting(Manifest.PackEntry::file).as("B's packs").doesNotContain(basePack);

        WorkingSetWriter.attach(a, everyStoredPage(guest));

        for (Path image : List.of(a, b)) {
            try (CheckpointImage img = CheckpointImage.open(image)) {
                img.verify();
                assertThat(SyntheticGuest.sameMemory(guest, ImageRoundTripTest.restoreStream(img))).as("memory of " + image).isTrue();
            }
        }
    }

    /** The same, then gc and rm: gc keeps what a listed image names, rm B and gc free exactly B's packs. */
    @Test
    void gcKeepsEveryPackAListedImageNamesAndRmFreesTheRest(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("gcKeepsEveryPackAListedImageNamesAndRmFreesTheRest"), 1, 16, 300, 0.2, 0.1);
        Path store = dir.resolve("store");
        ImageWriter.Options options = new ImageWriter.Options(Codec.LZ4, 1, 8, store);
        Path a = dir.resolve("a");
        Path b = dir.resolve("b");
        ImageRoundTripTest.saveInto(a, guest, options);
        WorkingSetWriter.attach(a, everyStoredPage(guest));
        guest.pages[0][1] = new byte[4096];
        guest.pages[0][1][9] = 7; // B differs from A by one page: it writes one pack of its own
        Manifest second = ImageRoundTripTest.saveInto(b, guest, options);
        Manifest first = WorkingSetWriter.attach(a, everyStoredPage(guest));

        Store.GcReport gc = Store.open(store).collectGarbage(false);
        assertThat(gc.liveImages()).containsExactlyInAnyOrder(a, b);
        List<String> named = new ArrayList<>(first.storage().packs().stream().map(Manifest.PackEntry::file).toList());
        second.storage().packs().forEach(p -> named.add(p.file()));
        assertThat(packs(store)).as("packs after gc: every pack A or B names, and no other").containsExactlyInAnyOrderElementsOf(
                named.stream().distinct().toList());
        opensWithTheSameMemory(b, guest);

        Store.Removed removed = Store.removeImage(b);
        assertThat(removed.store()).isEqualTo(store);
        assertThat(b).doesNotExist();
        Store.GcReport after = Store.open(store).collectGarbage(false);
        assertThat(after.liveImages()).containsExactly(a);
        assertThat(packs(store)).containsExactlyInAnyOrderElementsOf(first.storage().packs().stream().map(Manifest.PackEntry::file).toList());
        assertThat(after.freedByteSize()).isPositive();
        try (CheckpointImage img = CheckpointImage.open(a)) {
            img.verify();
        }
    }

    private static void opensWithTheSameMemory(Path image, SyntheticGuest guest) throws Exception {
        try (CheckpointImage img = CheckpointImage.open(image)) {
            img.verify();
            assertThat(SyntheticGuest.sameMemory(guest, ImageRoundTripTest.restoreStream(img))).as("memory of " + image).isTrue();
        }
    }

    static List<String> packs(Path store) throws Exception {
        try (Stream<Path> files = Files.list(store)) {
            return files.map(p -> p.getFileName().toString()).filter(n -> n.matches("pack-.*\\.thaw")).toList();
        }
    }

    @Test
    void twoSavesIntoOneStoreAtOnceBothCommitAndOpen(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("twoSavesIntoOneStoreAtOnceBothCommitAndOpen");
        SyntheticGuest one = SyntheticGuest.random(random, 2, 300, 0.2, 0.1);
        SyntheticGuest two = SyntheticGuest.random(random, 1, 300, 0.2, 0.1);
        Files.createDirectories(dir.resolve("store"));
        Files.createSymbolicLink(dir.resolve("same-store"), dir.resolve("store"));
        CyclicBarrier bothWriting = new CyclicBarrier(2);
        List<CompletableFuture<Manifest>> saves = new ArrayList<>();
        java.util.concurrent.ExecutorService threads = java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor();
        for (SyntheticGuest guest : List.of(one, two)) {
            Path target = dir.resolve(guest == one ? "one" : "two");
            // The store under two names: one lock all the same.
            ImageWriter.Options options = new ImageWriter.Options(Codec.ZSTD, 1, 16, dir.resolve(guest == one ? "store" : "same-store"));
            saves.add(CompletableFuture.supplyAsync(() -> {
                try (ImageWriter writer = ImageWriter.create(target, options)) {
                    dev.thaw.migration.SaveStreamParser.parse(new java.io.ByteArrayInputStream(guest.toStream(50)),
                            ImageRoundTripTest.sink(writer));
                    bothWriting.await(30, TimeUnit.SECONDS); // both hold the store before either commits
                    return writer.commit(new Manifest.Source("7.2.22", null, List.of(), null), "test");
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            }, threads));
        }
        for (CompletableFuture<Manifest> save : saves) save.get(60, TimeUnit.SECONDS);
        threads.close();
        opensWithTheSameMemory(dir.resolve("one"), one);
        opensWithTheSameMemory(dir.resolve("two"), two);
        assertThat(Store.open(dir.resolve("store")).collectGarbage(false).liveImages()).hasSize(2);
    }

    @Test
    void anUnreadablePackDoesNotFailLaterSaves(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("anUnreadablePackDoesNotFailLaterSaves"), 1, 200, 0.2, 0.1);
        Path store = dir.resolve("store");
        ImageWriter.Options options = new ImageWriter.Options(Codec.ZSTD, 1, 16, store);
        Manifest first = ImageRoundTripTest.saveInto(dir.resolve("a"), guest, options);
        Path pack = store.resolve(first.storage().packs().getFirst().file());
        byte[] bytes = Files.readAllBytes(pack);
        Files.write(pack, java.util.Arrays.copyOf(bytes, bytes.length - 100)); // truncated: its frame no longer reads
        Files.write(store.resolve(Pack.fileName(UUID.randomUUID())), new byte[] {1, 2, 3}); // and one that never was a pack

        Manifest second = ImageRoundTripTest.saveInto(dir.resolve("b"), guest, options);
        assertThat(second.stats().sharedPageCount()).as("content of the damaged pack is stored again").isZero();
        opensWithTheSameMemory(dir.resolve("b"), guest);
    }

    @Test
    void gcWaitsForASaveThatHoldsTheStore(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("gcWaitsForASaveThatHoldsTheStore"), 1, 100, 0.2, 0.1);
        Path store = dir.resolve("store");
        try (ImageWriter writer = ImageWriter.create(dir.resolve("a"), new ImageWriter.Options(Codec.ZSTD, 1, 4, store))) {
            dev.thaw.migration.SaveStreamParser.parse(new java.io.ByteArrayInputStream(guest.toStream(50)), ImageRoundTripTest.sink(writer));
            CompletableFuture<Store.GcReport> gc = CompletableFuture.supplyAsync(() -> Store.open(store).collectGarbage(false));
            assertThatThrownBy(() -> gc.get(500, TimeUnit.MILLISECONDS)).as("gc while a save writes").isInstanceOf(TimeoutException.class);
            writer.commit(new Manifest.Source("7.2.22", null, List.of(), null), "test");
            assertThat(gc.get(30, TimeUnit.SECONDS).deletedPacks()).as("the committed save's pack").isEmpty();
        }
        opensWithTheSameMemory(dir.resolve("a"), guest);
    }

    @Test
    void gcRefusesWhenAListedImageIsGoneAndForgetsASaveThatDied(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("gcRefusesWhenAListedImageIsGoneAndForgetsASaveThatDied"), 1, 100, 0.2, 0.1);
        Path store = dir.resolve("store");
        ImageWriter.Options options = new ImageWriter.Options(Codec.ZSTD, 1, 4, store);
        ImageRoundTripTest.saveInto(dir.resolve("a"), guest, options);
        guest.pages[0][0] = new byte[4096];
        guest.pages[0][0][0] = 1;
        ImageRoundTripTest.saveInto(dir.resolve("b"), guest, options);
        // What a SIGKILLed save leaves: a pending entry for an image that never appeared, a pack and a temporary file.
        Path died = dir.resolve("died");
        Store.open(store).registerPending(UUID.randomUUID(), died);
        Files.write(store.resolve(Pack.fileName(UUID.randomUUID())), new byte[100]);
        Files.write(store.resolve(Pack.fileName(UUID.randomUUID()) + ".tmp-0a1b2c3d"), new byte[100]);
        List<String> before = packs(store);

        dev.thaw.util.FileTrees.deleteQuietly(dir.resolve("b")); // by hand, not with rm
        assertThatThrownBy(() -> Store.open(store).collectGarbage(false)).isInstanceOf(ImageException.Missing.class)
                .hasMessageContaining(dir.resolve("b").toString()).hasMessageContaining("--forget-missing");
        assertThat(packs(store)).as("a refused gc deletes nothing").isEqualTo(before);

        Store.GcReport gc = Store.open(store).collectGarbage(true);
        assertThat(gc.forgottenImages()).containsExactlyInAnyOrder(died, dir.resolve("b"));
        assertThat(gc.deletedTemporaryFileCount()).isEqualTo(1);
        assertThat(gc.deletedPacks()).hasSize(2); // B's own pack and the dead save's
        try (Stream<Path> files = Files.list(store.resolve(Store.IMAGES))) {
            assertThat(files.count()).isEqualTo(1);
        }
        try (CheckpointImage a = CheckpointImage.open(dir.resolve("a"))) {
            a.verify();
        }
    }

    @Test
    void storeVerifyReadsEveryPackAndNamesDamage(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("storeVerifyReadsEveryPackAndNamesDamage"), 1, 200, 0.2, 0.1);
        Path store = dir.resolve("store");
        Manifest first = ImageRoundTripTest.saveInto(dir.resolve("a"), guest, new ImageWriter.Options(Codec.NONE, 1, 4, store));
        WorkingSetWriter.attach(dir.resolve("a"), everyStoredPage(guest));
        WorkingSetWriter.attach(dir.resolve("a"), everyStoredPage(guest)); // leaves the first working-set pack as garbage

        Store.VerifyReport report = Store.open(store).verify();
        assertThat(report.imageCount()).isEqualTo(1);
        assertThat(report.packCount()).isEqualTo(3);
        assertThat(report.unreferencedPacks()).hasSize(1);
        long queued = everyStoredPage(guest).size(); // each working-set pack holds a copy per queued page, duplicates included
        assertThat(report.pageCount()).isEqualTo(first.stats().storedPageCount() + 2 * queued);

        Path pack = store.resolve(first.storage().packs().getFirst().file());
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(pack.toFile(), "rw")) {
            f.seek(100);
            int b = f.read();
            f.seek(100);
            f.write(b ^ 1);
        }
        assertThatThrownBy(() -> Store.open(store).verify()).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining(pack.getFileName().toString()).hasMessageContaining("expected");
    }

    /** Guest memory is secret: whatever the umask, an image and its store are for their owner only. */
    @Test
    void imagesAndStoresAreForTheirOwnerOnly(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("imagesAndStoresAreForTheirOwnerOnly"), 1, 100, 0.2, 0.1);
        ImageRoundTripTest.saveInto(dir.resolve("own"), guest, ImageWriter.Options.defaults());
        ImageRoundTripTest.saveInto(dir.resolve("new/parent/shared"), guest, new ImageWriter.Options(Codec.ZSTD, 1, 4, dir.resolve("store")));
        WorkingSetWriter.attach(dir.resolve("own"), everyStoredPage(guest));
        List<String> wrong = new ArrayList<>();
        try (Stream<Path> all = Files.walk(dir)) {
            for (Path p : all.filter(p -> !p.equals(dir)).toList()) {
                String mode = PosixFilePermissions.toString(Files.getPosixFilePermissions(p));
                if (!mode.equals(Files.isDirectory(p) ? "rwx------" : "rw-------")) wrong.add(dir.relativize(p) + " " + mode);
            }
        }
        assertThat(wrong).as("files not 0600, directories not 0700").isEmpty();
    }

    @Test
    void aStoreWithoutAnImageListIsNotTakenOver(@TempDir Path dir) throws Exception {
        Path store = dir.resolve("old-store");
        Files.createDirectories(store);
        Files.write(store.resolve(Pack.fileName(UUID.randomUUID())), new byte[100]);
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("aStoreWithoutAnImageListIsNotTakenOver"), 1, 50, 0.2, 0.1);
        assertThatThrownBy(() -> ImageRoundTripTest.saveInto(dir.resolve("a"), guest, new ImageWriter.Options(Codec.ZSTD, 1, 4, store)))
                .isInstanceOf(ImageException.Missing.class).hasMessageContaining("older Thaw");
        assertThat(dir.resolve("a")).doesNotExist();
    }

    /** Holds a store's lock shared in another process until its standard input closes: a save, as gc sees it. */
    public static final class HoldSharedLock {
        public static void main(String[] args) throws Exception {
            try (StoreLock.Held held = StoreLock.of(Path.of(args[0])).shared()) {
                System.out.println("locked");
                System.out.flush();
                while (System.in.read() >= 0) {
                    // until the parent closes our input
                }
            }
        }
    }

    @Test
    void gcWaitsForAnotherProcessThatHoldsTheStore(@TempDir Path dir) throws Exception {
        Path store = dir.resolve("store");
        Store.createOrOpen(store);
        Process holder = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
                System.getProperty("java.class.path"), HoldSharedLock.class.getName(), store.toString())
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        try {
            String first = new java.io.BufferedReader(new java.io.InputStreamReader(holder.getInputStream())).readLine();
            assertThat(first).as("the other process's answer").isEqualTo("locked");
            CompletableFuture<Store.GcReport> gc = CompletableFuture.supplyAsync(() -> Store.open(store).collectGarbage(false));
            assertThatThrownBy(() -> gc.get(1, TimeUnit.SECONDS)).as("gc while another process writes").isInstanceOf(TimeoutException.class);
            holder.getOutputStream().close();
            assertThat(gc.get(30, TimeUnit.SECONDS).deletedPacks()).isEmpty();
        } finally {
            holder.destroyForcibly().waitFor();
        }
    }
}
