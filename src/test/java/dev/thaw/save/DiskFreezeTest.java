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
}
