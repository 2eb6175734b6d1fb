package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.image.CheckpointImage;
import dev.thaw.image.ImageRoundTripTest;
import dev.thaw.image.ImageWriter;
import dev.thaw.qemu.QemuVm;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Finding a restore left paused by a dead Thaw, from run directories made by hand (no QEMU: this JVM stands in for it). */
class PausedRestoresTest {
    private static final long ALIVE = ProcessHandle.current().pid();

    private static long deadPid() throws Exception {
        Process p = new ProcessBuilder("true").start();
        p.waitFor();
        return p.pid();
    }

    private static Path runDir(Path parent, String suffix, String vmName, long qemuPid, long thawPid) throws Exception {
        return runDir(parent, suffix, vmName, qemuPid, thawPid, "3cf67187-ea0c-4fd9-a99d-75828f19a8cd");
    }

    private static Path runDir(Path parent, String suffix, String vmName, long qemuPid, long thawPid, String imageId) throws Exception {
        Path dir = Files.createDirectory(parent.resolve(QemuVm.RUN_DIR_PREFIX + suffix));
        Files.writeString(dir.resolve(QemuVm.CONFIG_FILE), "{\"name\":\"" + vmName + "\"}");
        Files.writeString(dir.resolve(QemuVm.PID_FILE), Long.toString(qemuPid));
        new PostcopyRestore.Marker(imageId, "/images/a", thawPid, PostcopyRestore.GuestRam.DEFAULT)
                .write(dir);
        return dir;
    }

    @Test
    void onlyRestoresWhoseThawIsGoneAndWhoseQemuLivesAreFound(@TempDir Path parent) throws Exception {
        long dead = deadPid();
        Path paused = runDir(parent, "a", "vm-paused", ALIVE, dead);
        Path served = runDir(parent, "b", "vm-served", ALIVE, ALIVE);
        Path gone = runDir(parent, "c", "vm-gone", dead, dead);
        Files.createDirectory(parent.resolve(QemuVm.RUN_DIR_PREFIX + "d")); // a QEMU that is no restore

        assertThat(PausedRestores.list(parent)).extracting(PausedRestores.Paused::vmName).containsExactly("vm-paused");
        PausedRestores.Paused byName = PausedRestores.find(parent, "vm-paused");
        assertThat(byName.runDir()).isEqualTo(paused);
        assertThat(byName.marker().thawPid()).isEqualTo(dead);
        assertThat(PausedRestores.find(parent, paused.resolve("qmp.sock").toString()).vmName())
                .as("by the path of its QMP socket").isEqualTo("vm-paused");
        assertThatThrownBy(() -> PausedRestores.find(parent, "vm-served"))
                .hasMessageContaining("expected the name or QMP socket of a paused restore whose Thaw is gone, actual none of that name;"
                        + " paused restores: [vm-paused]");
        assertThatThrownBy(() -> PausedRestores.find(parent, served.toString()))
                .hasMessageContaining("actual a restore still served by Thaw pid " + ALIVE);
        assertThatThrownBy(() -> PausedRestores.find(parent, parent.resolve(QemuVm.RUN_DIR_PREFIX + "d").toString()))
                .hasMessageContaining("actual no lazy or ws restore recorded in");
        assertThat(PausedRestores.removeDead(parent)).as("only the restore whose Thaw and QEMU both died").isEqualTo(1);
        assertThat(gone).doesNotExist();
        assertThat(paused).exists();
        assertThat(served).exists();
    }

    @Test
    void aPlainRestoreOfTheImageFindsItsOnePausedRestore(@TempDir Path dir) throws Exception {
        Path parent = Files.createDirectory(dir.resolve("run"));
        Path imageDir = dir.resolve("image");
        ImageRoundTripTest.saveInto(imageDir, SyntheticGuest.random(
                Seeds.random("aPlainRestoreOfTheImageFindsItsOnePausedRestore"), 1, 20, 0.2, 0.1),
                ImageWriter.Options.defaults());
        try (CheckpointImage image = CheckpointImage.open(imageDir)) {
            long dead = deadPid();
            assertThat(PausedRestores.ofImage(parent, image)).isEmpty();
            runDir(parent, "other", "vm-other-image", ALIVE, dead);
            assertThat(PausedRestores.ofImage(parent, image)).as("a paused restore of another image").isEmpty();
            runDir(parent, "one", "vm-one", ALIVE, dead, image.manifest().imageId());
            assertThat(PausedRestores.ofImage(parent, image)).map(PausedRestores.Paused::vmName).contains("vm-one");
            runDir(parent, "two", "vm-two", ALIVE, dead, image.manifest().imageId());
            assertThatThrownBy(() -> PausedRestores.ofImage(parent, image))
                    .hasMessageContaining("expected at most one paused restore to resume, actual 2").hasMessageContaining("--resume NAME");
        }
    }
}
