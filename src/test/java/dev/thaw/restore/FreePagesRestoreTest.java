package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.guest.DemoGuest;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.FreePages;
import dev.thaw.qemu.QemuOption;
import dev.thaw.qemu.QemuVm;
import dev.thaw.testing.ResidentMemory;
import dev.thaw.testing.RestoredGuest;
import dev.thaw.testing.TestHost;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A guest with a free-page-reporting balloon that wrote and freed most of its memory: the image stores far fewer pages than the
 * guest touched (without the balloon the freed pages keep their unique data and are all stored), and the eager restore
 * brings back its memory and workload.
 */
class FreePagesRestoreTest {
    private static final DemoGuest GUEST = new DemoGuest(512, 32, 16);
    private static final long FREE_MIB = 320;

    @Test
    void freedPagesAreNotStoredAndTheGuestRestores(@TempDir Path dir) throws Exception {
        AtomicLong freedMiB = new AtomicLong();
        RestoredGuest.SavedGuest saved = RestoredGuest.saveGuest(GUEST.vmConfig("thaw-test-free", TestHost.guest(), TestHost.qemu(),
                TestHost.accel(), FreePages.REPORTING, FREE_MIB), dir.resolve("image"), vm -> {
            try {
                // freemem ran before wsbench; the guest kernel reports free blocks 2 s after they are freed, and QEMU's memory
                // stops shrinking once it has discarded them.
                freedMiB.set(DemoGuest.awaitFreed(vm, vm.console().cursorFromStart(), Duration.ofSeconds(5)));
                long residentBytes = ResidentMemory.awaitSettled(vm, Duration.ofSeconds(3), Duration.ofSeconds(30));
                System.err.printf("freemem wrote and freed %d MiB; QEMU resident %d MiB%n", freedMiB.get(), residentBytes >> 20);
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
        });
        assertThat(freedMiB.get()).as("MiB freemem wrote and freed (capped by what the guest had available)").isGreaterThanOrEqualTo(256);
        long touchedPages = (freedMiB.get() + GUEST.totalMiB()) * 256;
        try (CheckpointImage image = CheckpointImage.open(saved.imageDir())) {
            Manifest.Stats stats = image.manifest().stats();
            System.err.printf("saved %d pages (%d zero, %d stored) into %d bytes; the guest touched %d pages%n", stats.pageCount(),
                    stats.zeroPageCount(), stats.storedPageCount(), stats.imageFileBytes(), touchedPages);
            // Without the balloon every freed page keeps freemem's unique data: stored >= touched.
            assertThat(stats.storedPageCount()).as("pages stored, against the %d the guest wrote (freed: %d MiB)", touchedPages,
                    freedMiB.get()).isLessThan(touchedPages / 2);
            assertThat(FreePages.of(QemuOption.parse(IncomingQemu.savedConfig(image).extraArgs())))
                    .as("the launch configuration the image records").isEqualTo(FreePages.REPORTING);
            assertThat(MappedRestore.whyNotMappable(image, dir.resolve("any.ram"))).as("a mapped restore of this guest")
                    .hasValueSatisfying(why -> assertThat(why).contains("free-page-reporting=on"));
            EagerRestore.Result restored = EagerRestore.restore(image, EagerRestore.Options.defaults("thaw-test-free-eager"), p -> {});
            try (QemuVm vm = restored.vm()) {
                RestoredGuest.assertSameMemoryAndRunsOn(vm, saved.before(), saved.lastSeqBefore());
            }
        }
    }
}
