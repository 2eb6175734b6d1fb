package dev.thaw.save;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.qemu.Accel;
import dev.thaw.qemu.VmConfig;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** A guest that runs on after a save goes on on overlays: its configuration follows them, read-only disks unchanged. */
class DiskFreezeTest {
    private static VmConfig config(List<VmConfig.Disk> disks) {
        return new VmConfig("g", "pc-i440fx-7.2", Accel.TCG, 256, 1, Path.of("/k"), Path.of("/i"), "", false, false, List.of(), disks);
    }

    @Test
    void theConfigurationFollowsTheWritableDisksOntoTheirOverlaysInOrder() {
        VmConfig.Disk root = new VmConfig.Disk("root", "raw", Path.of("/d/root.img"), false, "06.0");
        VmConfig.Disk ro = new VmConfig.Disk("ro", "raw", Path.of("/d/ro.img"), true, "07.0");
        VmConfig.Disk data = new VmConfig.Disk("data", "qcow2", Path.of("/d/data.qcow2"), false, "08.0");
        VmConfig after = DiskFreeze.following(config(List.of(root, ro, data)),
                List.of(Path.of("/d/root.img.after-x.qcow2"), Path.of("/d/data.qcow2.after-x.qcow2")));
        assertThat(after.disks()).containsExactly(root.on(Path.of("/d/root.img.after-x.qcow2"), "qcow2", false), ro,
                data.on(Path.of("/d/data.qcow2.after-x.qcow2"), "qcow2", false));
        assertThatThrownBy(() -> DiskFreeze.following(config(List.of(root, data)), List.of(Path.of("/d/root.img.after-x.qcow2"))))
                .hasMessageContaining("disk data").hasMessageContaining("actual only 1");
    }

    @Test
    void aGuestSavedAgainGoesOnOnAnOverlayNamedFromItsFirstDiskFile() {
        assertThat(DiskFreeze.overlayFor(Path.of("/d/data.qcow2"), Path.of("/img/web"))).isEqualTo(Path.of("/d/data.qcow2.after-web.qcow2"));
        assertThat(DiskFreeze.overlayFor(Path.of("/d/data.qcow2.after-web.qcow2"), Path.of("/img/web2")))
                .isEqualTo(Path.of("/d/data.qcow2.after-web2.qcow2"));
        assertThat(DiskFreeze.overlayFor(Path.of("/d/root.img.after-a.qcow2.after-b.mig.qcow2"), Path.of("/img/c.mig")))
                .isEqualTo(Path.of("/d/root.img.after-c.mig.qcow2"));
    }

    /** A file holding just the qcow2 header fields the chain's walk reads, naming {@code backing} at offset 512. */
    private static Path qcow2Naming(Path file, String backing) throws Exception {
        byte[] name = backing.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4096).putInt(0x514649fb).putInt(3).putLong(512).putInt(name.length);
        b.put(512, name);
        return java.nio.file.Files.write(file, b.array());
    }

    /**
     * The layers numbered before the stop are checked against the chain walked again at the stop: the top's backing name
     * changed meanwhile (mid.qcow2 taken out of the chain), a layer now at another file is dropped, one still at its file kept.
     */
    @Test
    void aBackingFileNoLongerAtItsLayerAtTheStopIsNotTakenFrom(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path low = java.nio.file.Files.write(dir.resolve("low.raw"), new byte[8192]);
        Path other = java.nio.file.Files.write(dir.resolve("other.raw"), new byte[8192]);
        Path mid = qcow2Naming(dir.resolve("mid.qcow2"), "low.raw");
        Path top = qcow2Naming(dir.resolve("top.qcow2"), "mid.qcow2");
        VmConfig.Disk disk = new VmConfig.Disk("data", "qcow2", top, false, "08.0");
        List<DiskFreeze.Indexed> indexed = new java.util.ArrayList<>();
        for (Path file : dev.thaw.image.Qcow2Chain.of(top)) {
            dev.thaw.image.DiskIdentity identity = dev.thaw.image.DiskIdentity.of(file);
            indexed.add(new DiskFreeze.Indexed(0, indexed.size(), disk, file,
                    dev.thaw.image.DiskBlockIndex.forBase(file, identity, dir.resolve("cache")).index()));
        }
        assertThat(DiskFreeze.frozenBases(indexed)).extracting(dev.thaw.image.DiskPages.Base::file).containsExactly(top, mid, low);

        qcow2Naming(top, "other.raw"); // now top -> other.raw: layer 1 is another file, layer 2 is none
        assertThat(DiskFreeze.frozenBases(indexed)).extracting(dev.thaw.image.DiskPages.Base::file).containsExactly(top);
        qcow2Naming(top, "mid.qcow2"); // back as it was: every layer kept
        assertThat(DiskFreeze.frozenBases(indexed)).extracting(dev.thaw.image.DiskPages.Base::layer).containsExactly(0, 1, 2);
        qcow2Naming(mid, "other.raw"); // layer 1 kept, layer 2 is another file now
        assertThat(DiskFreeze.frozenBases(indexed)).extracting(dev.thaw.image.DiskPages.Base::file).containsExactly(top, mid);
        assertThat(other).exists();
    }
}
