package dev.thaw.objectstore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.Codec;
import dev.thaw.image.ImageRoundTripTest;
import dev.thaw.image.ImageWriter;
import dev.thaw.image.Manifest;
import dev.thaw.image.PortableImage;
import dev.thaw.image.WorkingSetWriter;
import dev.thaw.testing.S3Server;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Images in object storage, against a real S3-compatible server (s3proxy, filesystem backend) started here. */
@Timeout(120)
class ObjectStoreImagesTest {
    private static final String BUCKET = "thaw-images";
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

    /** An image of a random guest (own store unless {@code sharedStore}), with a working set of every third stored page. */
    static Path image(Path dir, SyntheticGuest guest, Path sharedStore) {
        ImageWriter.Options options = sharedStore == null ? ImageWriter.Options.defaults() : new ImageWriter.Options(Codec.LZ4, 1, 16, sharedStore);
        ImageRoundTripTest.saveInto(dir, guest, options);
        List<PageRef> pages = new ArrayList<>();
        for (int p = 0; p < guest.pages[0].length; p += 3) if (guest.pages[0][p] != null) pages.add(new PageRef(0, p));
        WorkingSetWriter.attach(dir, WorkingSet.of(Estimator.TRACE, pages, pages.size(), "every third stored page"));
        return dir;
    }

    /** Flips one bit in the middle of an object in the bucket; its key. */
    static String damage(ObjectStore store, String key) {
        byte[] bytes = store.get(key, 1L << 30);
        bytes[bytes.length / 2] ^= 0x40;
        store.put(key, bytes);
        return key;
    }

    /** Two saves of one guest into one shared store, {@code first} and {@code DIR/second}, one page changed between them. */
    static Path successiveSaves(Path dir, String seed, Path first) {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random(seed), 1, 1000, 2000, 0.2, 0.1);
        Path sharedStore = dir.resolve("store");
        image(first, guest, sharedStore);
        guest.pages[0][0] = new byte[4096];
        guest.pages[0][0][7] = 7;
        return image(dir.resolve("second"), guest, sharedStore);
    }

    /** Every regular file of a tree by relative path, with its bytes' digest (links followed: a pulled store is a directory). */
    static Map<String, String> files(Path root) throws Exception {
        Map<String, String> out = new TreeMap<>();
        try (Stream<Path> walk = Files.walk(root)) {
            for (Path p : walk.filter(Files::isRegularFile).toList()) {
                out.put(root.relativize(p).toString(), java.util.HexFormat.of().formatHex(
                        java.security.MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p))));
            }
        }
        return out;
    }

    @Test
    void pushThenPullGivesTheSameImageByteForByteVerified(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("pushThenPullGivesTheSameImageByteForByteVerified"), 2, 200, 4000, 0.2, 0.1);
        Path local = image(dir.resolve("local"), guest, null);
        try (ObjectStore store = store()) {
            S3Location prefix = S3Location.parse("s3://" + BUCKET + "/roundtrip");
            ImagePush.Report pushed = ImagePush.push(store, local, prefix, "vm1");
            long imageBytes = dev.thaw.util.FileTrees.size(local);
            System.out.printf("push: %d objects, %d bytes in %.3f s (%.1f MB/s)%n", pushed.uploadedObjects(), pushed.uploadedBytes(),
                    pushed.seconds(), pushed.uploadedBytes() / 1e6 / pushed.seconds());
            assertThat(pushed.uploadedBytes()).as("bytes uploaded: the whole image").isEqualTo(imageBytes);
            assertThat(pushed.skippedBytes()).isZero();
            assertThat(pushed.manifestRewritten()).isFalse();

            Files.createDirectories(dir.resolve("pulled"));
            ImageFetch.Report pulled = ImageFetch.pull(store, S3Location.parseImage("s3://" + BUCKET + "/roundtrip/vm1"), dir.resolve("pulled"));
            System.out.printf("pull: %d objects, %d bytes in %.3f s (%.1f MB/s, verified); working-set pack %d bytes by %.3f s%n",
                    pulled.fetchedObjects(), pulled.fetchedBytes(), pulled.seconds(), pulled.fetchedBytes() / 1e6 / pulled.seconds(),
                    pulled.workingSetPackBytes(), pulled.workingSetSeconds());
            assertThat(pulled.directory()).isEqualTo(dir.resolve("pulled/vm1"));
            assertThat(files(pulled.directory())).as("the pulled image's files").isEqualTo(files(local));
            assertThat(pulled.workingSetPackBytes()).isPositive();
            try (CheckpointImage image = CheckpointImage.open(pulled.directory())) {
                assertThat(image.workingSet()).isPresent();
                byte[] page = new byte[4096];
                for (int p = 0; p < guest.pages[0].length; p++) {
                    boolean stored = image.readPage(0, p, page, 0);
                    assertThat(stored).isEqualTo(guest.pages[0][p] != null);
                    if (stored) assertThat(page).as("page " + p).isEqualTo(guest.pages[0][p]);
                }
            }
            // The image's name was pushed last: a second push of the same image sends only its manifest.
            ImagePush.Report again = ImagePush.push(store, local, prefix, "vm1");
            assertThat(again.uploadedObjects()).isEqualTo(1);
            assertThat(again.skippedBytes() + again.uploadedBytes()).isEqualTo(imageBytes);
        }
    }

    @Test
    void imagesSharingPacksInAStoreShareThemInTheBucket(@TempDir Path dir) throws Exception {
        Path first = dir.resolve("first");
        Path second = successiveSaves(dir, "imagesSharingPacksInAStoreShareThemInTheBucket", first);
        try (ObjectStore store = store()) {
            S3Location prefix = S3Location.parse("s3://" + BUCKET + "/dedup");
            ImagePush.Report a = ImagePush.push(store, first, prefix, "first");
            ImagePush.Report b = ImagePush.push(store, second, prefix, "second");
            System.out.printf("dedup: first push %d bytes; second %d bytes uploaded, %d skipped%n", a.uploadedBytes(), b.uploadedBytes(),
                    b.skippedBytes());
            assertThat(a.manifestRewritten()).as("a shared store's manifest is made portable").isTrue();
            assertThat(b.skippedBytes()).as("the second image's packs already pushed with the first").isPositive();
            assertThat(b.uploadedBytes()).as("second push").isLessThan(a.uploadedBytes());
            for (String name : List.of("first", "second")) {
                Path into = Files.createDirectories(dir.resolve("pulled-" + name));
                ImageFetch.Report r = ImageFetch.pull(store, new S3Location.Image(prefix, name), into);
                try (CheckpointImage image = CheckpointImage.open(r.directory())) {
                    assertThat(image.manifest().storage().storeDirectory()).isEqualTo("store");
                    assertThat(image.manifest().imageId()).isEqualTo(CheckpointImage.open(dir.resolve(name)).manifest().imageId());
                }
            }
        }
    }

    @Test
    void aDamagedObjectFailsThePullNamingItAndLeavesNothing(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("aDamagedObjectFailsThePullNamingItAndLeavesNothing"), 1, 300, 600, 0.2, 0.1);
        Path local = image(dir.resolve("local"), guest, null);
        try (ObjectStore store = store()) {
            S3Location prefix = S3Location.parse("s3://" + BUCKET + "/damaged");
            ImagePush.push(store, local, prefix, "vm");
            String pack = CheckpointImage.open(local).manifest().storage().packs().getFirst().file();
            String key = damage(store, prefix.key("packs/" + pack));
            Path into = Files.createDirectories(dir.resolve("pulled"));
            assertThatThrownBy(() -> ImageFetch.pull(store, new S3Location.Image(prefix, "vm"), into))
                    .isInstanceOf(ObjectStoreException.Corrupt.class)
                    .hasMessageContaining("s3://" + BUCKET + "/" + key)
                    .hasMessageMatching("(?s).*expected [0-9a-f]+ \\(manifest\\), actual [0-9a-f]+.*")
                    .satisfies(e -> System.out.println("damaged object: " + e.getMessage()));
            try (Stream<Path> left = Files.list(into)) {
                assertThat(left.toList()).as("what a failed pull leaves").isEmpty();
            }
            // A restore's fetch checks the same way, and keeps nothing damaged in its cache.
            ImageCache cache = new ImageCache(dir.resolve("cache"), 1L << 30);
            assertThatThrownBy(() -> cache.fetch(store, new S3Location.Image(prefix, "vm")))
                    .isInstanceOf(ObjectStoreException.Corrupt.class).hasMessageContaining(key);
            assertThat(dir.resolve("cache/packs/" + pack)).doesNotExist();
        }
    }

    /**
     * An object larger than a part goes up in parts at once and comes back in ranges at once, in order and checked: a 20 MiB
     * file in four 5 MiB parts, then fetched in three 8 MiB range GETs into the same bytes; a byte damaged in the second
     * range, or an object shorter than recorded (shorter than its first range, while the later GETs are in flight), fails the
     * fetch naming the object and leaves no file.
     */
    @Test
    void aLargeObjectGoesUpInPartsAndComesBackInRangesChecked(@TempDir Path dir) throws Exception {
        Path file = dev.thaw.testing.RandomFiles.write(dir.resolve("big.raw"), 20, 31);
        byte[] bytes = Files.readAllBytes(file);
        String sha256 = java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(bytes));
        PortableImage.Part part = new PortableImage.Part("big", bytes.length, new PortableImage.Check.Sha256(sha256));
        Path fetched = Files.createDirectories(dir.resolve("fetched"));
        try (ObjectStore store = store()) {
            String key = "large/big";
            store.put(key, file, 5L << 20, ObjectStore.PARTS_IN_FLIGHT);
            assertThat(store.get(key, 1L << 30)).as("the parts, in order").isEqualTo(bytes);

            long getsBefore = store.requests().gets();
            ImageFetch.fetch(store, key, part, fetched.resolve("big"));
            assertThat(store.requests().gets() - getsBefore).as("range GETs").isEqualTo(3);
            assertThat(Files.readAllBytes(fetched.resolve("big"))).isEqualTo(bytes);

            byte[] damaged = bytes.clone();
            damaged[(12 << 20) + 5] ^= 0x10;
            store.put(key, damaged);
            assertThatThrownBy(() -> ImageFetch.fetch(store, key, part, fetched.resolve("damaged")))
                    .isInstanceOf(ObjectStoreException.Corrupt.class)
                    .hasMessageContaining("s3://" + BUCKET + "/" + key).hasMessageContaining("expected " + sha256);

            // Shorter than its first range: that range fails while the other two GETs (past the end) are in flight.
            store.put(key, java.util.Arrays.copyOf(bytes, 4 << 20));
            assertThatThrownBy(() -> ImageFetch.fetch(store, key, part, fetched.resolve("short")))
                    .isInstanceOf(ObjectStoreException.Corrupt.class)
                    .hasMessageContaining("s3://" + BUCKET + "/" + key + ": bytes 0-8388607: expected 8388608 bytes, actual 4194304");
            try (Stream<Path> left = Files.list(fetched)) {
                assertThat(left.map(p -> p.getFileName().toString()).toList()).as("what the failed fetches left").containsExactly("big");
            }
        }
    }

    @Test
    void aMissingImageOrBucketIsNamed(@TempDir Path dir) {
        try (ObjectStore store = store(); ObjectStore noBucket = new ObjectStore(server.settings(), "no-such-bucket")) {
            assertThatThrownBy(() -> ImageFetch.pull(store, S3Location.parseImage("s3://" + BUCKET + "/nowhere/vm"), dir))
                    .isInstanceOf(ObjectStoreException.NotFound.class)
                    .hasMessageContaining("no image vm under s3://" + BUCKET + "/nowhere: expected the object s3://" + BUCKET + "/nowhere/vm.thaw");
            assertThatThrownBy(() -> ImageFetch.pull(noBucket, S3Location.parseImage("s3://no-such-bucket/vm"), dir))
                    .isInstanceOf(ObjectStoreException.NotFound.class)
                    .hasMessageContaining("bucket no-such-bucket does not exist at " + server.endpoint());
        }
    }

    /** Without credentials (none in the environment or ~/.aws here): refused, saying so, before any request is sent. */
    @Test
    void noCredentialsIsRefusedSayingSo(@TempDir Path dir) {
        ObjectStore.Settings anonymous = new ObjectStore.Settings(java.util.Optional.of(server.endpoint()), java.util.Optional.of("us-east-1"),
                java.util.Optional.empty(), java.time.Duration.ofSeconds(2), java.time.Duration.ofSeconds(2));
        try (ObjectStore store = new ObjectStore(anonymous, BUCKET)) {
            assertThatThrownBy(() -> ImageFetch.pull(store, S3Location.parseImage("s3://" + BUCKET + "/vm"), dir))
                    .isInstanceOf(ObjectStoreException.Refused.class)
                    .satisfies(e -> System.out.println("no credentials: " + e.getMessage()))
                    // a developer's own ~/.aws/credentials would be sent instead, and refused by the test server
                    .hasMessageMatching("(?s)(no credentials for GET s3://" + BUCKET + "/vm.thaw at " + server.endpoint()
                            + ": expected AWS_ACCESS_KEY_ID.*|.*HTTP 403.*)");
        }
    }

    @Test
    void anEndpointThatRefusesOrNeverAnswersFailsWithinItsTimeouts(@TempDir Path dir) throws Exception {
        int closedPort;
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            closedPort = s.getLocalPort();
        }
        try (ObjectStore refused = new ObjectStore(S3Server.settings(java.net.URI.create("http://127.0.0.1:" + closedPort)), BUCKET)) {
            long start = System.nanoTime();
            assertThatThrownBy(() -> ImageFetch.pull(refused, S3Location.parseImage("s3://" + BUCKET + "/vm"), dir))
                    .isInstanceOf(ObjectStoreException.Unreachable.class)
                    .hasMessageContaining("cannot reach the object store at http://127.0.0.1:" + closedPort);
            assertThat((System.nanoTime() - start) / 1e9).as("seconds until a refused endpoint fails").isLessThan(10);
        }
        // A server that accepts connections and never says a word: the read timeout (2 s here) ends each attempt.
        try (ServerSocket silent = new ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress())) {
            List<Socket> accepted = new java.util.concurrent.CopyOnWriteArrayList<>();
            Thread acceptor = Thread.ofVirtual().start(() -> {
                try {
                    while (true) accepted.add(silent.accept());
                } catch (IOException e) {
                    // closed
                }
            });
            try (ObjectStore mute = new ObjectStore(S3Server.settings(java.net.URI.create("http://127.0.0.1:" + silent.getLocalPort())), BUCKET)) {
                long start = System.nanoTime();
                assertThatThrownBy(() -> ImageFetch.pull(mute, S3Location.parseImage("s3://" + BUCKET + "/vm"), dir))
                        .isInstanceOf(ObjectStoreException.Unreachable.class)
                        .hasMessageContaining("read timeout 2 s")
                        .satisfies(e -> System.out.println("silent endpoint: " + e.getMessage()));
                double seconds = (System.nanoTime() - start) / 1e9;
                System.out.printf("a silent endpoint failed after %.1f s%n", seconds);
                assertThat(seconds).as("seconds until a silent endpoint fails").isLessThan(30);
            } finally {
                silent.close();
                acceptor.join(5000);
                for (Socket s : accepted) s.close();
            }
        }
    }

    @Test
    void theCacheFetchesTheWorkingSetFirstSharesPacksAndStaysWithinItsBound(@TempDir Path dir) throws Exception {
        Path first = dir.resolve("first");
        Path second = successiveSaves(dir, "theCacheFetchesTheWorkingSetFirst", first);
        try (ObjectStore store = store()) {
            S3Location prefix = S3Location.parse("s3://" + BUCKET + "/cache");
            ImagePush.push(store, first, prefix, "first");
            ImagePush.push(store, second, prefix, "second");
            long firstBytes = dev.thaw.util.FileTrees.size(first) + CheckpointImage.open(first).manifest().storage().packs().stream()
                    .mapToLong(Manifest.PackEntry::byteSize).sum();
            ImageCache cache = new ImageCache(dir.resolve("cache"), firstBytes * 3 / 2);
            ImageCache.Fetched a = cache.fetch(store, new S3Location.Image(prefix, "first"));
            assertThat(a.report().workingSetPackBytes()).isPositive();
            assertThat(a.report().workingSetSeconds()).isLessThanOrEqualTo(a.report().seconds());
            try (CheckpointImage image = CheckpointImage.open(a.directory())) {
                image.verify();
                String wsPack = image.manifest().storage().packs().getLast().file();
                assertThat(image.manifest().storage().packs()).hasSizeGreaterThan(1);
                assertThat(a.report().fetchedPacks()).as("packs in the order fetched").first().isEqualTo(wsPack);
                assertThat(a.report().fetchedPacks()).hasSameSizeAs(image.manifest().storage().packs());
            }
            ImageCache.Fetched again = cache.fetch(store, new S3Location.Image(prefix, "first"));
            assertThat(again.report().fetchedObjects()).as("a second restore's fetch: only the manifest").isEqualTo(1);
            ImageCache.Fetched b = cache.fetch(store, new S3Location.Image(prefix, "second"));
            assertThat(b.report().reusedBytes()).as("packs the second image shares with the first, not fetched again").isPositive();
            assertThat(dev.thaw.util.FileTrees.size(dir.resolve("cache"))).as("the cache's bytes").isLessThanOrEqualTo(firstBytes * 3 / 2);
            try (CheckpointImage image = CheckpointImage.open(b.directory())) {
                image.verify();
            }
            ImageCache tiny = new ImageCache(dir.resolve("tiny"), 1000);
            assertThatThrownBy(() -> tiny.fetch(store, new S3Location.Image(prefix, "first")))
                    .isInstanceOf(ObjectStoreException.Unsupported.class).hasMessageContaining("expected an image of at most 1000 bytes");
        }
    }

    @Test
    void aRestoreReadsPagesWhileTheirPacksArriveAndEachPackEndsWholeAndChecked(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("aRestoreReadsPagesWhileTheirPacksArrive"), 1, 8000, 8000, 0.2, 0.05);
        Path local = image(dir.resolve("local"), guest, null);
        try (ObjectStore store = store()) {
            S3Location prefix = S3Location.parse("s3://" + BUCKET + "/lazy");
            ImagePush.push(store, local, prefix, "vm");
            ImageCache cache = new ImageCache(dir.resolve("cache"), 1L << 30);
            try (ImageCache.Opened o = cache.open(store, new S3Location.Image(prefix, "vm"), true);
                 CheckpointImage image = o.openImage()) {
                assertThat(o.lazyPacks()).isNotNull();
                byte[] page = new byte[4096];
                int later = guest.pages[0].length * 2 / 3; // stored in the base pack, not the working set's copy (every third page)
                while (guest.pages[0][later] == null || later % 3 == 0) later++;
                image.readPage(0, later, page, 0); // two thirds into the base pack, which the background fetches after the copy
                LazyPacks.Counts early = o.counts();
                System.out.println("after one demand read: " + early);
                // One small GET, or none when the background's GET had brought those chunks already (it marks each as it lands).
                assertThat(early.demandRequests()).as("range GETs for what a reader needs now").isLessThanOrEqualTo(1);
                assertThat(early.demandBytes()).as("bytes of that GET: the chunks one extent spans").isLessThanOrEqualTo(2L * LazyPacks.CHUNK_BYTES);
                for (int p = 0; p < guest.pages[0].length; p++) {
                    boolean stored = image.readPage(0, p, page, 0);
                    assertThat(stored).isEqualTo(guest.pages[0][p] != null);
                    if (stored) assertThat(page).as("page " + p).isEqualTo(guest.pages[0][p]);
                }
                o.awaitAll(java.time.Duration.ofSeconds(60));
                System.out.println("in all: " + o.counts());
                assertThat(o.counts().done()).isTrue();
                image.verify();
            }
            try (Stream<Path> left = Files.list(dir.resolve("cache/packs"))) {
                assertThat(left.map(p -> p.getFileName().toString()).toList()).as("packs").noneMatch(n -> n.endsWith(".partial")).hasSize(2);
            }
            try (ImageCache.Opened again = cache.open(store, new S3Location.Image(prefix, "vm"), true)) {
                assertThat(again.lazyPacks()).as("packs to fetch the second time").isNull();
                assertThat(again.report().fetchedObjects()).isEqualTo(1);
            }

            // A damaged pack: the extent it hits fails to read as from a local image, and the pack is never taken as whole.
            String pack = CheckpointImage.open(local).manifest().storage().packs().getFirst().file();
            String key = damage(store, prefix.key("packs/" + pack));
            ImageCache fresh = new ImageCache(dir.resolve("fresh"), 1L << 30);
            try (ImageCache.Opened o = fresh.open(store, new S3Location.Image(prefix, "vm"), true);
                 CheckpointImage image = o.openImage()) {
                assertThatThrownBy(() -> {
                    byte[] page = new byte[4096];
                    for (int p = 0; p < guest.pages[0].length; p++) image.readPage(0, p, page, 0);
                }).isInstanceOfAny(dev.thaw.image.ImageException.Corrupt.class, ObjectStoreException.Corrupt.class).hasMessageContaining("expected")
                        .satisfies(e -> System.out.println("damaged, read while arriving: " + e.getMessage()));
                assertThatThrownBy(() -> o.awaitAll(java.time.Duration.ofSeconds(60)))
                        .isInstanceOf(ObjectStoreException.Corrupt.class).hasMessageContaining("s3://" + BUCKET + "/" + key)
                        .hasMessageMatching("(?s).*expected [0-9a-f]+ \\(manifest\\), actual [0-9a-f]+.*");
            }
            assertThat(dir.resolve("fresh/packs/" + pack + ".partial")).as("the damaged pack stays unfinished").exists();
        }
    }

    /**
     * A synthetic image over a qcow2 chain like a save's (a qcow2 file over a qcow2 backing file it names by its absolute path,
     * as QEMU's snapshots do), its pages references into both files: in {@code dir}; {@code guest} holds its memory.
     */
    record DiskImage(Path image, Path top, Path backing, SyntheticGuest guest) {}

    static DiskImage diskImage(Path dir, Path diskDir, String name, String seed) throws Exception {
        java.util.Random random = Seeds.random(seed);
        java.time.Duration timeout = java.time.Duration.ofSeconds(60);
        Path backing = diskDir.resolve("backing.qcow2");
        Path top = diskDir.resolve("top.qcow2");
        if (!Files.exists(top)) {
            Files.createDirectories(diskDir);
            Path lower = dev.thaw.testing.RandomFiles.write(diskDir.resolve("lower.raw"), 2, 31);
            dev.thaw.util.ExternalCommand.check(List.of("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", lower.toString(),
                    backing.toString()), timeout);
            Files.delete(lower);
            dev.thaw.util.ExternalCommand.check(List.of("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing.toString(),
                    top.toString()), timeout);
            Path written = dev.thaw.testing.RandomFiles.write(diskDir.resolve("written.raw"), 1, 37);
            dev.thaw.util.ExternalCommand.check(List.of("qemu-io", "-f", "qcow2", "-c", "write -s " + written + " 1M 256k", top.toString()), timeout);
            Files.delete(written);
        }
        Path view = dir.resolve(name + ".view.raw");
        dev.thaw.util.ExternalCommand.check(List.of("qemu-img", "convert", "-q", "-f", "qcow2", "-O", "raw", top.toString(), view.toString()), timeout);
        byte[] guestDisk = Files.readAllBytes(view);
        Files.delete(view);
        SyntheticGuest guest = SyntheticGuest.random(random, 1, 600, 600, 0.2, 0);
        for (int p = 0; p < 400; p++) guest.pages[0][p] = java.util.Arrays.copyOfRange(guestDisk, (p + 100) * 4096, (p + 101) * 4096);
        List<dev.thaw.image.DiskPages.Base> bases = new ArrayList<>();
        for (dev.thaw.save.DiskLayers.Layer layer : dev.thaw.save.DiskLayers.of(top, w -> {})) {
            dev.thaw.image.DiskIdentity identity = dev.thaw.image.DiskIdentity.of(layer.file());
            bases.add(new dev.thaw.image.DiskPages.Base(0, layer.layer(), layer.file(), identity, dev.thaw.image.DiskBlockIndex.forBase(layer.file(),
                    identity, dir.resolve("index-cache"), dev.thaw.save.DiskLayers::dataExtents).index()));
        }
        Path image = dir.resolve(name);
        Manifest m = writeWithDisk(image, guest, bases, new Manifest.Disk("disk0", "04.0", "qcow2", top.toString(), false, guestDisk.length,
                dev.thaw.image.DiskIdentity.of(top)));
        assertThat(m.formatVersion()).as("references into the backing file").isEqualTo(Manifest.VERSION_WITH_BACKING_REFS);
        assertThat(m.stats().diskReferencePageCount()).as("pages taken from the chain").isGreaterThan(300);
        return new DiskImage(image, top, backing, guest);
    }

    /** The guest's image in {@code image}, with one disk, its pages equal to blocks of {@code bases} taken from them. */
    private static Manifest writeWithDisk(Path image, SyntheticGuest guest, List<dev.thaw.image.DiskPages.Base> bases, Manifest.Disk disk) {
        try (ImageWriter writer = ImageWriter.create(image, ImageWriter.Options.defaults())) {
            writer.diskBases(bases);
            dev.thaw.migration.SaveStreamParser.parse(new java.io.ByteArrayInputStream(guest.toStream(50)), new dev.thaw.save.ImageSink(writer));
            writer.disks(List.of(disk));
            return writer.commit(new Manifest.Source("7.2.22", null, List.of(), null), "test");
        }
    }

    /** {@code DIR/raw}, an image whose first {@code referenced} pages are references into a raw base of {@code mib} MiB, {@code DIR/disks/disk.raw}. */
    record RawBaseImage(byte[] disk, SyntheticGuest guest, Manifest manifest) {}

    static RawBaseImage rawBaseImage(Path dir, String seed, long mib, int referenced) throws IOException {
        Path base = dev.thaw.testing.RandomFiles.write(Files.createDirectories(dir.resolve("disks")).resolve("disk.raw"), mib, seed.length());
        byte[] disk = Files.readAllBytes(base);
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random(seed), 1, 300, 300, 0.2, 0);
        for (int p = 0; p < referenced; p++) guest.pages[0][p] = java.util.Arrays.copyOfRange(disk, p * 4096, (p + 1) * 4096);
        dev.thaw.image.DiskIdentity identity = dev.thaw.image.DiskIdentity.of(base);
        Manifest m = writeWithDisk(dir.resolve("raw"), guest, List.of(new dev.thaw.image.DiskPages.Base(0, base, identity,
                dev.thaw.image.DiskBlockIndex.forBase(base, identity, dir.resolve("index-cache")).index())),
                new Manifest.Disk("disk0", "04.0", "raw", base.toString(), false, disk.length, identity));
        return new RawBaseImage(disk, guest, m);
    }

    /** A raw base goes alone (no chain to walk): pushed, fetched, its pages read back from its copy. */
    @Test
    void anImageOverARawBaseCarriesIt(@TempDir Path dir) throws Exception {
        RawBaseImage raw = rawBaseImage(dir, "anImageOverARawBaseCarriesIt", 1, 200);
        byte[] disk = raw.disk();
        SyntheticGuest guest = raw.guest();
        assertThat(raw.manifest().stats().diskReferencePageCount()).isEqualTo(200);
        try (ObjectStore store = store()) {
            ImagePush.push(store, dir.resolve("raw"), S3Location.parse("s3://" + BUCKET + "/raw"), "raw");
            Files.move(dir.resolve("disks"), dir.resolve("disks-gone"));
            try (ImageCache.Opened o = new ImageCache(dir.resolve("cache"), 1L << 30).open(store, S3Location.parseImage("s3://" + BUCKET + "/raw/raw"), false);
                 CheckpointImage image = o.openImage()) {
                assertThat(o.report().diskBaseBytes()).isEqualTo(disk.length);
                assertThat(image.carriedBases().orElseThrow().chainOf(image.directory(), 0)).containsExactly(image.diskBase(0));
                assertThat(image.diskBase(0)).startsWith(image.directory().resolve("bases"));
                assertThat(image.diskBase(0).toRealPath()).startsWith(dir.toRealPath().resolve("cache/bases"));
                assertThat(image.verify().diskPageCount()).isEqualTo(200);
                assertThat(SyntheticGuest.sameMemory(guest, ImageRoundTripTest.restoreStream(image))).as("memory as saved").isTrue();
            }
        }
    }

    /**
     * A base pushed once is found by a later push through its hash cached by its identity, without reading it: the base's
     * middle changed behind an unchanged identity (what every restore trusts) is not read by a push whose object is there;
     * where the object is not there the base is hashed anew from its bytes, so no object is named by a stale hash.
     */
    @Test
    void aBasePushedOnceIsFoundByItsCachedHashAndUploadedOnlyUnderItsOwn(@TempDir Path dir) throws Exception {
        RawBaseImage raw = rawBaseImage(dir, "aBasePushedOnceIsFoundByItsCachedHash", 3, 100);
        Path base = dir.resolve("disks/disk.raw");
        Path hashes = dir.resolve("cache");
        try (ObjectStore store = store()) {
            S3Location first = S3Location.parse("s3://" + BUCKET + "/hashes-a");
            ImagePush.Report a = ImagePush.push(store, dir.resolve("raw"), first, "one", hashes);
            assertThat(a.uploadedBytes()).as("the base uploaded").isGreaterThan(raw.disk().length);
            String sha = sha256(Files.readAllBytes(base));
            assertThat(BaseHashes.cached(hashes, dev.thaw.image.DiskIdentity.of(base))).contains(sha);

            // Its middle rewritten, its identity (size, time, first and last MiB) kept.
            java.nio.file.attribute.FileTime time = Files.getLastModifiedTime(base);
            try (var ch = java.nio.channels.FileChannel.open(base, java.nio.file.StandardOpenOption.WRITE)) {
                ch.write(java.nio.ByteBuffer.wrap(new byte[] {1, 2, 3, 4}), 3L << 19);
            }
            Files.setLastModifiedTime(base, time);
            ImagePush.Report b = ImagePush.push(store, dir.resolve("raw"), first, "two", hashes);
            assertThat(b.uploadedBytes()).as("the base found by its cached hash, not read and sent again").isLessThan(raw.disk().length);
            assertThat(b.skippedBytes()).isGreaterThanOrEqualTo(raw.disk().length);

            S3Location second = S3Location.parse("s3://" + BUCKET + "/hashes-b");
            ImagePush.push(store, dir.resolve("raw"), second, "one", hashes);
            String now = sha256(Files.readAllBytes(base));
            assertThat(now).isNotEqualTo(sha);
            assertThat(store.list(second.key("bases/"))).as("uploaded under the hash of its bytes").extracting(ObjectStore.Listed::key)
                    .containsExactly(second.key("bases/" + now));
            assertThat(BaseHashes.cached(hashes, dev.thaw.image.DiskIdentity.of(base))).contains(now);
        }
    }

    private static String sha256(byte[] bytes) throws Exception {
        return java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(bytes));
    }

    /**
     * An image whose pages are references into a qcow2 chain is pushed with its chain (each file an object named by its
     * SHA-256, a second image of the same disk sharing them) and fetched into the cache with it: with the original files gone,
     * every page reads back from the copies, which keep the identities the save recorded; a base object whose bytes are not
     * the recorded ones fails the fetch, naming the object, before anything could start, and leaves no copy.
     */
    @Test
    void anImageWithDiskBasesCarriesThemAndItsPagesRestoreFromTheCopies(@TempDir Path dir) throws Exception {
        Path disks = dir.resolve("disks");
        DiskImage first = diskImage(dir, disks, "vm1", "anImageWithDiskBasesCarriesThem");
        DiskImage second = diskImage(dir, disks, "vm2", "anImageWithDiskBasesCarriesThem2");
        long chainBytes = Files.size(first.top()) + Files.size(first.backing());
        String sha = java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(first.backing())));
        S3Location prefix = S3Location.parse("s3://" + BUCKET + "/disks");
        try (ObjectStore store = store()) {
            ImagePush.Report one = ImagePush.push(store, first.image(), prefix, "vm1");
            assertThat(one.uploadedBytes()).as("the image and both files of its chain").isGreaterThan(chainBytes + dev.thaw.util.FileTrees.size(first.image()));
            assertThat(store.size(prefix.key("bases/" + sha))).as("the backing file, named by its SHA-256").contains(Files.size(first.backing()));
            ImagePush.Report two = ImagePush.push(store, second.image(), prefix, "vm2");
            System.out.printf("push with a qcow2 chain of %d bytes: %d bytes in %.3f s; a second image of the disk: %d bytes, %d already there%n",
                    chainBytes, one.uploadedBytes(), one.seconds(), two.uploadedBytes(), two.skippedBytes());
            assertThat(two.skippedBytes()).as("the second image shares the chain's objects").isEqualTo(chainBytes);
            assertThat(two.uploadedBytes()).isLessThan(one.uploadedBytes() - chainBytes / 2);

            Files.move(disks, dir.resolve("disks-gone")); // the saving host's files: the restore must not read them
            ImageCache cache = new ImageCache(dir.resolve("cache"), 1L << 30);
            try (ImageCache.Opened o = cache.open(store, S3Location.parseImage("s3://" + BUCKET + "/disks/vm1"), false);
                 CheckpointImage image = o.openImage()) {
                assertThat(image.diskBase(0).toRealPath()).as("the base's copy").startsWith(dir.toRealPath().resolve("cache/bases"));
                assertThat(image.carriedBases().orElseThrow().chainOf(image.directory(), 0)).hasSize(2)
                        .allSatisfy(f -> assertThat(f.toRealPath()).startsWith(dir.toRealPath().resolve("cache/bases")));
                assertThat(dev.thaw.image.DiskIdentity.of(image.diskBase(0))).as("the copy's identity is the save's")
                        .isEqualTo(image.manifest().disks().getFirst().identity());
                assertThat(image.backingFileChanges()).as("the backing file's copy has its recorded identity").isEmpty();
                assertThat(image.verify().diskPageCount()).as("every referenced block read from the copies").isGreaterThan(300);
                assertThat(SyntheticGuest.sameMemory(first.guest(), ImageRoundTripTest.restoreStream(image))).as("memory as saved").isTrue();
            }
            try (ImageCache.Opened o = cache.open(store, S3Location.parseImage("s3://" + BUCKET + "/disks/vm2"), false)) {
                assertThat(o.report().reusedBytes()).as("the second image finds the chain's copies in the cache").isGreaterThanOrEqualTo(chainBytes);
            }

            // A copy damaged in the cache (its time put back) is fetched anew by the next open.
            Path copy;
            try (ImageCache.Opened o = cache.open(store, S3Location.parseImage("s3://" + BUCKET + "/disks/vm1"), false);
                 CheckpointImage image = o.openImage()) {
                assertThat(o.report().diskBaseBytes()).as("nothing fetched: the copies are here").isZero();
                copy = image.diskBase(0);
            }
            java.nio.file.attribute.FileTime time = Files.getLastModifiedTime(copy);
            byte[] bytes = Files.readAllBytes(copy);
            bytes[100] ^= 1;
            Files.write(copy, bytes);
            Files.setLastModifiedTime(copy, time);
            try (ImageCache.Opened o = cache.open(store, S3Location.parseImage("s3://" + BUCKET + "/disks/vm1"), false);
                 CheckpointImage image = o.openImage()) {
                assertThat(o.report().diskBaseBytes()).as("the damaged copy fetched anew").isEqualTo(Files.size(copy));
                assertThat(dev.thaw.image.DiskIdentity.of(copy)).isEqualTo(image.manifest().disks().getFirst().identity());
            }

            // A restore's overlays beside vm1 in the cache keep its bases' copies there, whatever else a fetch evicts.
            Path vm1 = cache.fetch(store, S3Location.parseImage("s3://" + BUCKET + "/disks/vm1")).directory();
            Files.write(Files.createDirectories(vm1.resolveSibling(vm1.getFileName() + ".disks").resolve("vm1-1")).resolve("disk0.qcow2"), new byte[1]);
            ImagePush.push(store, image(dir.resolve("plain"), SyntheticGuest.random(Seeds.random("plain"), 1, 300, 300, 0.2, 0), null), prefix, "plain");
            ImageCache small = new ImageCache(dir.resolve("cache"), dev.thaw.util.FileTrees.size(dir.resolve("plain")) + (64 << 10));
            ImageCache.Fetched plain = small.fetch(store, S3Location.parseImage("s3://" + BUCKET + "/disks/plain"));
            assertThat(plain.evictedBytes()).as("the second image's files and packs evicted").isPositive();
            try (Stream<Path> copies = Files.list(dir.resolve("cache/bases"))) {
                assertThat(copies.filter(f -> !f.toString().endsWith(".used")).count()).as("both copies kept").isEqualTo(2);
            }
            assertThat(vm1).exists();

            Path pulled = Files.createDirectories(dir.resolve("pulled"));
            ImageFetch.Report p = ImageFetch.pull(store, S3Location.parseImage("s3://" + BUCKET + "/disks/vm1"), pulled);
            try (CheckpointImage image = CheckpointImage.open(p.directory())) {
                assertThat(image.diskBase(0)).startsWith(p.directory().resolve("bases"));
                assertThat(SyntheticGuest.sameMemory(first.guest(), ImageRoundTripTest.restoreStream(image))).as("pulled: memory as saved").isTrue();
            }

            // The backing file's object replaced by other bytes of its size: a new cache's fetch refuses it.
            String key = damage(store, prefix.key("bases/" + sha));
            ImageCache fresh = new ImageCache(dir.resolve("cache2"), 1L << 30);
            assertThatThrownBy(() -> fresh.open(store, S3Location.parseImage("s3://" + BUCKET + "/disks/vm1"), false))
                    .isInstanceOf(ObjectStoreException.Corrupt.class)
                    .hasMessageStartingWith("s3://" + BUCKET + "/" + key + ": SHA-256: expected " + sha + " (the image's list of disk bases), actual ");
            try (Stream<Path> left = Files.list(dir.resolve("cache2/bases"))) {
                assertThat(left.map(f -> f.getFileName().toString())).as("no copy of the damaged object").noneMatch(n -> n.startsWith(sha));
            }
        }
    }

    /**
     * The list of disk bases in the bucket is bound to the manifest: a list whose base is another object (same size, same
     * first and last MiB, so that its identity matches) is refused by a pull and a restore's fetch, naming the list and
     * both SHA-256s, before any copy is made.
     */
    @Test
    void aListOfDiskBasesNotTheManifestsIsRefused(@TempDir Path dir) throws Exception {
        byte[] disk = rawBaseImage(dir, "aListOfDiskBasesNotTheManifestsIsRefused", 3, 100).disk();
        S3Location prefix = S3Location.parse("s3://" + BUCKET + "/forged");
        try (ObjectStore store = store()) {
            ImagePush.push(store, dir.resolve("raw"), prefix, "raw");
            String listKey;
            try (CheckpointImage pushed = CheckpointImage.open(dir.resolve("raw"))) {
                listKey = prefix.key(S3Location.diskBasesObject(pushed.manifest().imageId()));
            }
            byte[] forgedDisk = disk.clone();
            forgedDisk[disk.length / 2] ^= 1; // the middle MiB: outside what a disk identity samples
            String forgedSha = java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(forgedDisk));
            store.put(prefix.key("bases/" + forgedSha), forgedDisk);
            String list = new String(store.get(listKey, 1 << 20), java.nio.charset.StandardCharsets.UTF_8);
            String sha = java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(disk));
            assertThat(list).contains(sha);
            store.put(listKey, list.replace(sha, forgedSha).getBytes(java.nio.charset.StandardCharsets.UTF_8));

            Path pulled = Files.createDirectories(dir.resolve("pulled"));
            assertThatThrownBy(() -> ImageFetch.pull(store, S3Location.parseImage("s3://" + BUCKET + "/forged/raw"), pulled))
                    .isInstanceOf(ObjectStoreException.Corrupt.class)
                    .hasMessageContaining(store.url(listKey) + ": ")
                    .hasMessageContaining("disk bases: expected the list whose SHA-256 the manifest records (diskBasesSha256 ")
                    .hasMessageContaining("actual a list with SHA-256 ");
            assertThat(pulled).isEmptyDirectory();
            ImageCache cache = new ImageCache(dir.resolve("cache"), 1L << 30);
            assertThatThrownBy(() -> cache.open(store, S3Location.parseImage("s3://" + BUCKET + "/forged/raw"), false))
                    .isInstanceOf(ObjectStoreException.Corrupt.class).hasMessageContaining("diskBasesSha256");
            try (Stream<Path> copies = Files.list(dir.resolve("cache/bases"))) {
                assertThat(copies).as("no copy made").isEmpty();
            }
        }
    }

    /**
     * Images a, b and c (seeded PREFIX-a, ...) pushed under {@code s3://BUCKET/PREFIX}, and a cache that holds one and a half
     * of them: fetching a second evicts the least recently used unless it is pinned.
     */
    private static ImageCache threeImagesAndACacheForOneAndAHalf(ObjectStore store, Path dir, String prefixName) throws Exception {
        S3Location prefix = S3Location.parse("s3://" + BUCKET + "/" + prefixName);
        for (String name : List.of("a", "b", "c")) {
            ImagePush.push(store, image(dir.resolve(name), SyntheticGuest.random(Seeds.random(prefixName + "-" + name), 1, 300, 300, 0.2, 0),
                    null), prefix, name);
        }
        return new ImageCache(dir.resolve("cache"), dev.thaw.util.FileTrees.size(dir.resolve("a")) * 3 / 2);
    }

    /**
     * Only overlays pin a cached image: an empty {@code IMAGE.disks/} (a failed restore's, or one whose overlays the user
     * deleted) does not; and a pinned image whose carried list is damaged stays pinned, without failing the fetch that evicts.
     */
    @Test
    void anEmptyOverlayDirectoryPinsNothingAndADamagedListFailsNoFetch(@TempDir Path dir) throws Exception {
        try (ObjectStore store = store()) {
            ImageCache cache = threeImagesAndACacheForOneAndAHalf(store, dir, "pins");
            Path a = cache.fetch(store, S3Location.parseImage("s3://" + BUCKET + "/pins/a")).directory();
            Files.createDirectories(a.resolveSibling(a.getFileName() + ".disks").resolve("a-1")); // a failed restore's, emptied
            java.nio.file.attribute.FileTime old = java.nio.file.attribute.FileTime.fromMillis(0);
            Files.setLastModifiedTime(a, old); // the least recently used: the first to go, unless pinned
            Path b = cache.fetch(store, S3Location.parseImage("s3://" + BUCKET + "/pins/b")).directory();
            assertThat(a).as("an empty IMAGE.disks/ pins nothing: evicted for b").doesNotExist();

            Files.write(Files.createDirectories(b.resolveSibling(b.getFileName() + ".disks").resolve("b-1")).resolve("disk0.qcow2"), new byte[1]);
            Files.write(b.resolve(dev.thaw.image.DiskBases.FILE), "{not json".getBytes(java.nio.charset.StandardCharsets.UTF_8));
            Files.setLastModifiedTime(b, old);
            ImageCache.Fetched c = cache.fetch(store, S3Location.parseImage("s3://" + BUCKET + "/pins/c"));
            assertThat(c.directory()).exists();
            assertThat(b).as("pinned by its overlay, its damaged list notwithstanding").exists();
        }
    }

    /**
     * Overlays a restore put under its {@code --disk-dir} (outside the cache) pin their image through the link the restore
     * leaves in {@code IMAGE.disks/}, as overlays beside it do, until they are gone: then the image is evicted like any other.
     * A link to a link, or a cycle, pins nothing.
     */
    @Test
    void overlaysUnderADiskDirPinTheirImageThroughItsLinkWhileTheyExist(@TempDir Path dir) throws Exception {
        try (ObjectStore store = store()) {
            ImageCache cache = threeImagesAndACacheForOneAndAHalf(store, dir, "linked");
            java.nio.file.attribute.FileTime old = java.nio.file.attribute.FileTime.fromMillis(0);
            Path a = cache.fetch(store, S3Location.parseImage("s3://" + BUCKET + "/linked/a")).directory();
            Path overlays = Files.createDirectories(dir.resolve("own-disks/a-1"));
            Files.write(overlays.resolve("disk0.qcow2"), new byte[1]);
            Path links = Files.createDirectories(a.resolveSibling(a.getFileName() + ".disks"));
            Files.createSymbolicLink(links.resolve("a-1"), overlays);
            Files.setLastModifiedTime(a, old);
            Path b = cache.fetch(store, S3Location.parseImage("s3://" + BUCKET + "/linked/b")).directory();
            assertThat(a).as("pinned through the link to its overlays under --disk-dir").exists();
            assertThat(ImageCache.holdsOverlays(links)).isTrue();

            // A link to a directory that holds only a link back: nothing to keep.
            Path loop = Files.createDirectories(dir.resolve("loop"));
            Files.createSymbolicLink(loop.resolve("back"), links);
            Path other = Files.createDirectories(dir.resolve("other.disks"));
            Files.createSymbolicLink(other.resolve("x"), loop);
            assertThat(ImageCache.holdsOverlays(other)).as("a link to a link").isFalse();

            dev.thaw.util.FileTrees.deleteQuietly(dir.resolve("own-disks"));
            assertThat(ImageCache.holdsOverlays(links)).as("the overlays deleted: a dangling link").isFalse();
            Files.setLastModifiedTime(a, old);
            Files.setLastModifiedTime(b, java.nio.file.attribute.FileTime.fromMillis(1000));
            cache.fetch(store, S3Location.parseImage("s3://" + BUCKET + "/linked/c"));
            assertThat(a).as("evicted once its overlays are gone").doesNotExist();
        }
    }
}
