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
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.stream.Stream;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Attaching a working set lays its pages out in queue order, keeps the image's content, and switches atomically. */
class WorkingSetSectionTest {
    private static WorkingSet randomQueue(Random random, SyntheticGuest guest, Estimator estimator) {
        List<PageRef> all = new ArrayList<>();
        for (int b = 0; b < guest.pages.length; b++) {
            for (int p = 0; p < guest.pages[b].length; p++) all.add(new PageRef(b, p));
        }
        Collections.shuffle(all, random);
        List<WorkingSet.Entry> entries = new ArrayList<>();
        int n = random.nextInt(all.size() + 1);
        for (int i = 0; i < n; i++) entries.add(new WorkingSet.Entry(all.get(i), random.nextBoolean() ? -1 : random.nextLong(1, 1L << 40)));
        return new WorkingSet(estimator, entries, random.nextInt(2 * all.size() + 1), "test queue é " + n);
    }

    @RepeatedTest(4)
    void attachedWorkingSetReadsBackAndKeepsEveryPage(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("attachedWorkingSetReadsBackAndKeepsEveryPage");
        SyntheticGuest guest = SyntheticGuest.random(random, 1 + random.nextInt(3), 400, random.nextDouble() * 0.5, 0.1);
        Codec codec = Codec.values()[1 + random.nextInt(3)];
        Path img = dir.resolve("img");
        ImageRoundTripTest.saveInto(img, guest, new ImageWriter.Options(codec, 1, 1 + random.nextInt(32), null));
        byte[] pageMapBefore = Files.readAllBytes(img.resolve(ImageWriter.PAGE_MAP));

        WorkingSet first = randomQueue(random, guest, Estimator.DIRTY);
        WorkingSetWriter.attach(img, first);
        try (CheckpointImage image = CheckpointImage.open(img)) {
            assertThat(image.workingSet()).contains(first);
            image.verify();
            assertThat(SyntheticGuest.sameMemory(guest, ImageRoundTripTest.restoreStream(image))).as("RAM content with the section").isTrue();
        }

        WorkingSet second = randomQueue(random, guest, Estimator.TRACE);
        Manifest manifest = WorkingSetWriter.attach(img, second);
        try (CheckpointImage image = CheckpointImage.open(img)) {
            assertThat(image.workingSet()).contains(second);
            image.verify();
            assertThat(SyntheticGuest.sameMemory(guest, ImageRoundTripTest.restoreStream(image))).isTrue();
        }
        assertThat(names(img.resolve("store"))).as("the replaced working-set pack is deleted: the store holds the listed packs")
                .containsExactlyInAnyOrderElementsOf(manifest.storage().packs().stream().map(Manifest.PackEntry::file).toList());
        assertThat(names(img).stream().filter(f -> f.startsWith("workingset-"))).as("the replaced section is deleted").hasSize(1);
        assertThat(Files.readAllBytes(img.resolve(ImageWriter.PAGE_MAP))).as("the page map is never rewritten").isEqualTo(pageMapBefore);
    }

    private static List<String> names(Path... dirs) throws Exception {
        List<String> out = new ArrayList<>();
        for (Path d : dirs) {
            try (Stream<Path> files = Files.list(d)) {
                files.filter(Files::isRegularFile).map(p -> p.getFileName().toString()).forEach(out::add);
            }
        }
        return out;
    }

    private record Saved(Path image, SyntheticGuest guest) {}

    private static Saved smallImage(Path dir, String test, int maxPages) {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random(test), 1, 16, maxPages, 0.2, 0.1); // tests name pages below 16
        Path img = dir.resolve("img");
        ImageRoundTripTest.saveInto(img, guest, ImageWriter.Options.defaults());
        return new Saved(img, guest);
    }

    @Test
    void aDamagedSectionFailsTheOpenNamingTheFile(@TempDir Path dir) throws Exception {
        Path img = smallImage(dir, "aDamagedSectionFailsTheOpenNamingTheFile", 200).image();
        WorkingSetWriter.attach(img, WorkingSet.of(Estimator.TRACE, List.of(new PageRef(0, 3), new PageRef(0, 1)), 2, "t"));
        Path section;
        try (Stream<Path> files = Files.list(img)) {
            section = files.filter(p -> p.getFileName().toString().startsWith("workingset-")).findFirst().orElseThrow();
        }
        byte[] bytes = Files.readAllBytes(section);
        bytes[60] ^= 1;
        Files.write(section, bytes);
        assertThatThrownBy(() -> CheckpointImage.open(img)).isInstanceOf(ImageException.class)
                .hasMessageContaining(section.getFileName().toString());
    }

    @Test
    void pagesOutsideTheImageAreRefusedAndLeaveItUnchanged(@TempDir Path dir) throws Exception {
        Saved saved = smallImage(dir, "pagesOutsideTheImageAreRefusedAndLeaveItUnchanged", 50);
        Path img = saved.image();
        SyntheticGuest guest = saved.guest();
        String before = dev.thaw.testing.TreeDigest.of(img);
        int pages = guest.pages[0].length;
        assertThatThrownBy(() -> WorkingSetWriter.attach(img, WorkingSet.of(Estimator.TRACE, List.of(new PageRef(0, pages)), 1, "t")))
                .hasMessageContaining("outside the image");
        assertThat(dev.thaw.testing.TreeDigest.of(img)).isEqualTo(before);
    }

    /** Found by fuzzing (image-metadata): a location below 256 names extent -1, which decode looked up (IndexOutOfBounds). */
    @Test
    void aLocationBeforeTheFirstExtentIsCorrupt() {
        ExtentInfo extent = new ExtentInfo(UUID.randomUUID(), Framing.HEADER_BYTES, 4096, Codec.NONE, 1, 0);
        for (long location : new long[] {5, 0x00FF, 0x7FFF_FFFF_0000_0001L}) {
            WorkingSet ws = WorkingSet.of(Estimator.TRACE, List.of(new PageRef(0, 1)), 1, "t");
            byte[] body = new WorkingSetSection(ws, new long[] {location}, extent.packId(), List.of(extent)).encode();
            assertThatThrownBy(() -> WorkingSetSection.decode(Path.of("workingset-x.thaw"), body, new int[] {4}))
                    .as("location 0x%x", location).isInstanceOf(ImageException.Corrupt.class)
                    .hasMessageContaining("workingset-x.thaw").hasMessageContaining("expected a location in 1 extents");
        }
    }
}
