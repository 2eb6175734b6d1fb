package dev.thaw.objectstore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.image.CheckpointImage;
import dev.thaw.testing.S3Server;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** {@code thaw rm s3://} and {@code thaw gc s3://} against a real S3-compatible server (s3proxy) started here. */
@Timeout(120)
class BucketGcTest {
    private static final String BUCKET = "thaw-gc";
    @TempDir
    static Path serverDirectory;
    private static S3Server server;

    @BeforeAll
    static void startServer() throws Exception {
        server = new S3Server(serverDirectory.resolve("s3"));
        server.createBucket(BUCKET);
    }

    @AfterAll
    static void stopServer() throws Exception {
        if (server != null) server.close();
    }

    private static ObjectStore store() {
        return new ObjectStore(server.settings(), BUCKET);
    }

    /** Every key under the prefix, relative to it. */
    private static Set<String> keys(ObjectStore store, S3Location prefix) {
        Set<String> out = new TreeSet<>();
        for (ObjectStore.Listed o : store.list(prefix.key(""))) {
            // s3proxy's filesystem backend lists its directories as keys ending in a slash; they are not objects.
            if (!o.key().endsWith("/")) out.add(o.key().substring(prefix.key("").length()));
        }
        return out;
    }

    /** Pulls the image and reads every page of it, checked (pull verifies every extent and page). */
    private static void pullsWhole(ObjectStore store, S3Location prefix, String name, Path into) throws Exception {
        Files.createDirectories(into);
        ImageFetch.Report r = ImageFetch.pull(store, new S3Location.Image(prefix, name), into);
        try (CheckpointImage image = CheckpointImage.open(r.directory())) {
            assertThat(image.verify().pageCount()).as(name + "'s pages").isPositive();
        }
    }

    /**
     * Two successive saves sharing packs, an unrelated image, an image under a nested prefix and an object of the user's: the
     * first save's name removed, a dry run lists exactly what its push added (the packs it shares with the second save are
     * kept) and deletes nothing, the gc then deletes that and nothing else; every other image still pulls whole.
     */
    @Test
    void removedImagesOwnObjectsGoAndEverythingElseStays(@TempDir Path dir) throws Exception {
        Path first = dir.resolve("first");
        Path second = ObjectStoreImagesTest.successiveSaves(dir, "removedImagesOwnObjectsGoAndEverythingElseStays", first);
        Path other = ObjectStoreImagesTest.image(dir.resolve("other"), SyntheticGuest.random(Seeds.random("gc-other"), 1, 300, 600, 0.2, 0.1), null);
        S3Location prefix = S3Location.parse("s3://" + BUCKET + "/shared");
        try (ObjectStore store = store()) {
            ImagePush.push(store, second, prefix, "second");
            ImagePush.push(store, other, prefix, "other");
            ImagePush.push(store, other, S3Location.parse("s3://" + BUCKET + "/shared/nested"), "other");
            store.put(prefix.key("notes.txt"), "the user's".getBytes(StandardCharsets.UTF_8));
            Set<String> before = keys(store, prefix);
            ImagePush.Report pushed = ImagePush.push(store, first, prefix, "first");
            assertThat(pushed.skippedObjects()).as("packs the first save shares with the second").isPositive();
            Set<String> added = new TreeSet<>(keys(store, prefix));
            added.removeAll(before);
            added.remove("first.thaw");
            assertThat(added).as("what the first push added besides its name").isNotEmpty();

            BucketGc.Removed removed = BucketGc.removeImage(store, new S3Location.Image(prefix, "first"));
            assertThat(removed.imageId()).isEqualTo(CheckpointImage.open(first).manifest().imageId());
            assertThat(keys(store, prefix)).doesNotContain("first.thaw");

            Set<String> listed = keys(store, prefix);
            BucketGc.Report dry = BucketGc.collect(store, prefix, true);
            assertThat(new TreeSet<>(dry.deletedObjects())).as("a dry run's list").isEqualTo(added);
            assertThat(keys(store, prefix)).as("a dry run deletes nothing").isEqualTo(listed);

            BucketGc.Report gc = BucketGc.collect(store, prefix, false);
            System.out.printf("gc: %d images, %d objects kept (%d bytes), %d deleted (%d bytes), %d not Thaw's, %.3f s%n", gc.images().size(),
                    gc.keptObjectCount(), gc.keptByteSize(), gc.deletedObjects().size(), gc.freedByteSize(), gc.otherObjectCount(), gc.seconds());
            assertThat(new TreeSet<>(gc.deletedObjects())).isEqualTo(added);
            assertThat(gc.freedByteSize()).isPositive();
            assertThat(gc.images()).extracting(BucketGc.Image::name).containsExactlyInAnyOrder("second", "other");
            assertThat(gc.missingObjects()).isEmpty();
            int nested = keys(store, S3Location.parse("s3://" + BUCKET + "/shared/nested")).size();
            assertThat(gc.otherObjectCount()).as("notes.txt and the nested prefix's objects").isEqualTo(1 + nested);
            Set<String> expected = new TreeSet<>(listed);
            expected.removeAll(added);
            assertThat(keys(store, prefix)).as("what is left").isEqualTo(expected).contains("notes.txt", "nested/other.thaw");
            assertThat(keys(store, prefix)).as("no lock left behind").noneMatch(k -> k.startsWith("locks/"));

            pullsWhole(store, prefix, "second", dir.resolve("pulled-second"));
            pullsWhole(store, prefix, "other", dir.resolve("pulled-other"));
            pullsWhole(store, S3Location.parse("s3://" + BUCKET + "/shared/nested"), "other", dir.resolve("pulled-nested"));
            assertThat(BucketGc.collect(store, prefix, false).deletedObjects()).as("a second gc").isEmpty();
        }
    }

    /** A name pushed again leaves the previous version's files and packs; the gc deletes them, not the new version's. */
    @Test
    void aNamePushedAgainLeavesTheOldVersionForTheGc(@TempDir Path dir) throws Exception {
        Path a = ObjectStoreImagesTest.image(dir.resolve("a"), SyntheticGuest.random(Seeds.random("gc-a"), 1, 300, 600, 0.2, 0.1), null);
        Path b = ObjectStoreImagesTest.image(dir.resolve("b"), SyntheticGuest.random(Seeds.random("gc-b"), 1, 300, 600, 0.2, 0.1), null);
        S3Location prefix = S3Location.parse("s3://" + BUCKET + "/repushed");
        try (ObjectStore store = store()) {
            ImagePush.push(store, a, prefix, "vm");
            Set<String> old = keys(store, prefix);
            ImagePush.push(store, b, prefix, "vm");
            Set<String> current = new TreeSet<>(keys(store, prefix));
            current.removeAll(old);
            BucketGc.Report gc = BucketGc.collect(store, prefix, false);
            Set<String> gone = new TreeSet<>(old);
            gone.remove("vm.thaw");
            assertThat(new TreeSet<>(gc.deletedObjects())).as("the old version's objects").isEqualTo(gone);
            current.add("vm.thaw");
            assertThat(keys(store, prefix)).isEqualTo(current);
            pullsWhole(store, prefix, "vm", dir.resolve("pulled"));
        }
    }

    /** The bases of a removed image's disk go with it, unless another image's list names them. */
    @Test
    void diskBasesGoWithTheirLastImage(@TempDir Path dir) throws Exception {
        ObjectStoreImagesTest.rawBaseImage(dir, "diskBasesGoWithTheirLastImage", 1, 100);
        S3Location prefix = S3Location.parse("s3://" + BUCKET + "/bases");
        try (ObjectStore store = store()) {
            ImagePush.push(store, dir.resolve("raw"), prefix, "one");
            ImagePush.push(store, dir.resolve("raw"), prefix, "two");
            List<String> bases = keys(store, prefix).stream().filter(k -> k.startsWith("bases/")).toList();
            assertThat(bases).hasSize(1);
            BucketGc.removeImage(store, new S3Location.Image(prefix, "one"));
            assertThat(BucketGc.collect(store, prefix, false).deletedObjects()).as("both names are one image: nothing of it goes").isEmpty();
            pullsWhole(store, prefix, "two", dir.resolve("pulled"));
            BucketGc.removeImage(store, new S3Location.Image(prefix, "two"));
            BucketGc.Report gc = BucketGc.collect(store, prefix, false);
            assertThat(gc.deletedObjects()).containsAll(bases).anyMatch(k -> k.endsWith("/disk-bases.json"));
            assertThat(keys(store, prefix)).isEmpty();
        }
    }

    /**
     * A gc stops, deleting nothing, while a push holds the prefix; a push stops, uploading nothing, while a gc does; two pushes
     * share it. A lock its holder stopped rewriting is ignored once stale and deleted by the gc.
     */
    @Test
    void aPushAndAGcExcludeEachOtherUntilTheLockGoesStale(@TempDir Path dir) throws Exception {
        Path image = ObjectStoreImagesTest.image(dir.resolve("img"), SyntheticGuest.random(Seeds.random("gc-lock"), 1, 300, 600, 0.2, 0.1), null);
        S3Location prefix = S3Location.parse("s3://" + BUCKET + "/locked");
        try (ObjectStore store = store()) {
            ImagePush.push(store, image, prefix, "vm");
            BucketGc.removeImage(store, new S3Location.Image(prefix, "vm"));
            Set<String> listed;
            try (BucketLock push = BucketLock.acquire(store, prefix, BucketLock.Kind.PUSH);
                 BucketLock another = BucketLock.acquire(store, prefix, BucketLock.Kind.PUSH)) {
                listed = keys(store, prefix);
                assertThatThrownBy(() -> BucketGc.collect(store, prefix, false))
                        .isInstanceOf(ObjectStoreException.Busy.class)
                        .hasMessageContaining("a push holds this prefix").hasMessageContaining("locks/push-");
                assertThat(keys(store, prefix)).as("nothing deleted, the gc's lock gone").isEqualTo(listed);
            }
            try (BucketLock gc = BucketLock.acquire(store, prefix, BucketLock.Kind.GC)) {
                Set<String> held = keys(store, prefix);
                assertThatThrownBy(() -> ImagePush.push(store, image, prefix, "again"))
                        .isInstanceOf(ObjectStoreException.Busy.class).hasMessageContaining("a gc holds this prefix");
                assertThat(keys(store, prefix)).as("nothing uploaded").isEqualTo(held);
            }

            // A holder that died: its lock, never rewritten, stops a gc until it is stale, then goes.
            String dead = prefix.key("locks/push-" + UUID.randomUUID() + ".json");
            store.put(dead, "{}".getBytes(StandardCharsets.UTF_8));
            Duration staleAfter = Duration.ofSeconds(3);
            assertThatThrownBy(() -> BucketGc.collect(store, prefix, false, staleAfter, Duration.ofMinutes(1)))
                    .isInstanceOf(ObjectStoreException.Busy.class);
            Thread.sleep(4500);
            BucketGc.Report r = BucketGc.collect(store, prefix, false, staleAfter, Duration.ofMinutes(1));
            assertThat(r.staleLockCount()).isEqualTo(1);
            assertThat(r.deletedObjects()).as("the removed image's objects").isNotEmpty();
            assertThat(keys(store, prefix)).isEmpty();
        }
    }

    /**
     * A lock a gc deleted as stale is never written again by its holder's refresh, and the holder's confirm (a push's, before
     * its manifest) fails saying so.
     */
    @Test
    void aLockDeletedAsStaleIsLostForGood() throws Exception {
        S3Location prefix = S3Location.parse("s3://" + BUCKET + "/lost");
        try (ObjectStore store = store();
             BucketLock lock = BucketLock.acquire(store, prefix, BucketLock.Kind.PUSH, Duration.ofMinutes(10), Duration.ofMillis(200))) {
            lock.confirm();
            Set<String> keys = keys(store, prefix);
            assertThat(keys).hasSize(1);
            store.delete(prefix.key(keys.iterator().next()));
            Thread.sleep(1000);
            assertThat(keys(store, prefix)).as("not written again").isEmpty();
            assertThatThrownBy(lock::confirm).isInstanceOf(ObjectStoreException.Busy.class).hasMessageContaining("went stale");
        }
    }

    /**
     * An object of a shape Thaw does not write under one of its directories, or a manifest that cannot be read, stops the
     * gc before it deletes anything, naming it; {@code rm} removes such a name, and the gc then runs.
     */
    @Test
    void whatTheGcDoesNotUnderstandStopsItBeforeItDeletes(@TempDir Path dir) throws Exception {
        Path image = ObjectStoreImagesTest.image(dir.resolve("img"), SyntheticGuest.random(Seeds.random("gc-odd"), 1, 300, 600, 0.2, 0.1), null);
        S3Location prefix = S3Location.parse("s3://" + BUCKET + "/odd");
        try (ObjectStore store = store()) {
            ImagePush.push(store, image, prefix, "vm");
            ImagePush.push(store, image, prefix, "bad");
            BucketGc.removeImage(store, new S3Location.Image(prefix, "vm"));
            store.put(prefix.key("packs/readme.txt"), "x".getBytes(StandardCharsets.UTF_8));
            Set<String> listed = keys(store, prefix);
            assertThatThrownBy(() -> BucketGc.collect(store, prefix, false)).isInstanceOf(ObjectStoreException.Refused.class)
                    .hasMessageContaining("packs/readme.txt").hasMessageContaining("expected under packs/ only what a push writes")
                    .hasMessageContaining("nothing deleted");
            store.delete(prefix.key("packs/readme.txt"));

            ObjectStoreImagesTest.damage(store, prefix.key("bad.thaw"));
            assertThatThrownBy(() -> BucketGc.collect(store, prefix, false)).isInstanceOf(ObjectStoreException.Corrupt.class)
                    .hasMessageContaining("bad.thaw").hasMessageContaining("gc deleted nothing");
            Set<String> unchanged = new HashSet<>(listed);
            unchanged.remove("packs/readme.txt");
            assertThat(keys(store, prefix)).isEqualTo(unchanged);

            assertThat(BucketGc.removeImage(store, new S3Location.Image(prefix, "bad")).imageId()).as("unreadable").isEmpty();
            BucketGc.collect(store, prefix, false);
            assertThat(keys(store, prefix)).isEmpty();
            assertThatThrownBy(() -> BucketGc.removeImage(store, new S3Location.Image(prefix, "bad")))
                    .isInstanceOf(ObjectStoreException.NotFound.class).hasMessageContaining("no image bad");
        }
    }

    /** The shapes the gc knows, and what it leaves alone. */
    @Test
    void shapes() {
        assertThat(BucketGc.shapeOf("vm.thaw")).isEqualTo(BucketGc.Shape.MANIFEST);
        assertThat(BucketGc.shapeOf("notes.txt")).isEqualTo(BucketGc.Shape.OTHER);
        assertThat(BucketGc.shapeOf("nested/vm.thaw")).isEqualTo(BucketGc.Shape.OTHER);
        assertThat(BucketGc.shapeOf("packs/pack-" + UUID.randomUUID() + ".thaw")).isEqualTo(BucketGc.Shape.STORED);
        assertThat(BucketGc.shapeOf("packs/vm.thaw")).isEqualTo(BucketGc.Shape.UNEXPECTED);
        assertThat(BucketGc.shapeOf("bases/" + "ab".repeat(32))).isEqualTo(BucketGc.Shape.STORED);
        assertThat(BucketGc.shapeOf("bases/abc")).isEqualTo(BucketGc.Shape.UNEXPECTED);
        assertThat(BucketGc.shapeOf("files/" + UUID.randomUUID() + "/guest-files/kernel")).isEqualTo(BucketGc.Shape.STORED);
        assertThat(BucketGc.shapeOf("files/vm.thaw")).isEqualTo(BucketGc.Shape.UNEXPECTED);
        assertThat(BucketGc.shapeOf("files/not-an-id/x")).isEqualTo(BucketGc.Shape.UNEXPECTED);
        assertThat(BucketGc.shapeOf("locks/gc-" + UUID.randomUUID() + ".json")).isEqualTo(BucketGc.Shape.LOCK);
        assertThat(BucketGc.shapeOf("locks/vm.thaw")).isEqualTo(BucketGc.Shape.UNEXPECTED);
        assertThat(BucketGc.shapeOf("packs/")).as("a folder marker").isEqualTo(BucketGc.Shape.FOLDER);
    }
}
