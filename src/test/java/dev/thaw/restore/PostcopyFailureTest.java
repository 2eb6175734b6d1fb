package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import dev.thaw.guest.DemoGuest;
import dev.thaw.image.CheckpointImage;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.ReturnPathMessage;
import dev.thaw.migration.ReturnPathReader;
import dev.thaw.migration.StreamFormatException;
import dev.thaw.qemu.QemuVm;
import dev.thaw.save.Saver;
import dev.thaw.testing.Signals;
import dev.thaw.testing.TestHost;
import java.io.ByteArrayInputStream;
import java.io.EOFException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Fault injection for the postcopy restore: bad page requests, a malformed return path, QEMU killed mid-restore. */
class PostcopyFailureTest {
    private static final List<RamBlock> BLOCKS = List.of(new RamBlock("pc.ram", 1 << 20, 4096), new RamBlock("pc.bios", 1 << 16, 4096));
    private static final Map<String, Integer> INDEX = Map.of("pc.ram", 0, "pc.bios", 1);

    @Test
    void requestsForUnknownBlocksOrOutOfRangeOffsetsAreProtocolErrors() {
        PostcopyRestore.validate(BLOCKS, INDEX, new ReturnPathMessage.PageRequest("pc.ram", (1 << 20) - 4096, 4096, 0));
        assertThatThrownBy(() -> PostcopyRestore.validate(BLOCKS, INDEX, new ReturnPathMessage.PageRequest("vga.vram", 0, 4096, 0)))
                .isInstanceOf(StreamFormatException.class).hasMessageContaining("unknown RAM block 'vga.vram'");
        assertThatThrownBy(() -> PostcopyRestore.validate(BLOCKS, INDEX, new ReturnPathMessage.PageRequest("pc.bios", 1 << 16, 4096, 0)))
                .hasMessageContaining("expected a 4096-byte page below 0x10000, actual offset 0x10000");
        assertThatThrownBy(() -> PostcopyRestore.validate(BLOCKS, INDEX, new ReturnPathMessage.PageRequest("pc.ram", 100, 4096, 0)))
                .hasMessageContaining("actual offset 0x64");
        assertThatThrownBy(() -> PostcopyRestore.validate(BLOCKS, INDEX, new ReturnPathMessage.PageRequest("pc.ram", 0, 2 << 20, 0)))
                .hasMessageContaining("length 2097152");
    }

    @Test
    void returnPathReaderRejectsMalformedMessages() throws Exception {
        byte[] reqPagesWithoutId = {0, 4, 0, 12, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x10, 0};
        assertThatThrownBy(() -> new ReturnPathReader(new ByteArrayInputStream(reqPagesWithoutId)).next())
                .hasMessageContaining("REQ_PAGES before any REQ_PAGES_ID");
        byte[] shortShut = {0, 1, 0, 2, 0, 0};
        assertThatThrownBy(() -> new ReturnPathReader(new ByteArrayInputStream(shortShut)).next())
                .hasMessageContaining("SHUT: expected 4 bytes, actual 2");
        byte[] truncated = {0, 2, 0, 4, 0};
        assertThatThrownBy(() -> new ReturnPathReader(new ByteArrayInputStream(truncated)).next()).isInstanceOf(EOFException.class);
        byte[] ok = {0, 3, 0, 19, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0x10, 0, 6, 'p', 'c', '.', 'r', 'a', 'm', 0, 4, 0, 12, 0, 0, 0, 0, 0, 0, 0x30, 0, 0, 0, 0x10, 0};
        ReturnPathReader reader = new ReturnPathReader(new ByteArrayInputStream(ok));
        assertThat(reader.next()).isInstanceOfSatisfying(ReturnPathMessage.PageRequest.class, r -> {
            assertThat(r.blockName()).isEqualTo("pc.ram");
            assertThat(r.offset()).isEqualTo(0x2000);
        });
        assertThat(reader.next()).isInstanceOfSatisfying(ReturnPathMessage.PageRequest.class, r -> {
            assertThat(r.blockName()).as("REQ_PAGES reuses the last named block").isEqualTo("pc.ram");
            assertThat(r.offset()).isEqualTo(0x3000);
        });
    }

    @Test
    void qemuKilledMidRestoreEndsTheRestoreWithAClearError(@TempDir Path dir) throws Exception {
        Path image = dir.resolve("image");
        try (QemuVm vm = QemuVm.launch(TestHost.smallGuestConfig("thaw-test-pc-kill-src"))) {
            DemoGuest.awaitReady(vm, vm.console().cursorFromStart(), DemoGuest.BOOT_TIMEOUT);
            Saver.save(vm.qmp(), vm.config(), image, Saver.Options.defaults(), p -> {});
        }
        try (CheckpointImage img = CheckpointImage.open(image)) {
            AtomicBoolean killed = new AtomicBoolean();
            assertTimeoutPreemptively(Duration.ofSeconds(90), () -> assertThatThrownBy(() -> PostcopyRestore.restore(img,
                    PostcopyRestore.Options.lazy("thaw-test-pc-killed"), msg -> {
                        // Called on the scheduler thread right after the switch: the guest runs, most pages are still missing.
                        if (killed.compareAndSet(false, true)) {
                            QemuVm victim = QemuVm.live().stream().filter(v -> v.name().equals("thaw-test-pc-killed")).findFirst().orElseThrow();
                            Signals.send("KILL", victim.pid());
                            victim.awaitExit(Duration.ofSeconds(10));
                        }
                    }))
                    .isInstanceOf(RestoreException.class)
                    .hasMessageContaining("thaw-test-pc-killed: postcopy restore failed"));
            assertThat(killed).isTrue();
        }
        assertThat(QemuVm.live()).isEmpty();
    }

    @Test
    void aRequestNearTheTopOfTheOffsetRangeIsAProtocolError() {
        long top = Long.MAX_VALUE - 4095; // a multiple of 4096 whose end, offset + 4096, overflows
        assertThatThrownBy(() -> PostcopyRestore.validate(BLOCKS, INDEX, new ReturnPathMessage.PageRequest("pc.ram", top, 4096, 0)))
                .isInstanceOf(StreamFormatException.class).hasMessageContaining("actual offset 0x7ffffffffffff000");
    }
}
