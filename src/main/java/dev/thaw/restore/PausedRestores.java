package dev.thaw.restore;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Lazy and ws restores whose Thaw is gone while their QEMU lives on, paused in postcopy: found by the run directories Thaw's
 * QEMUs keep ({@code /tmp/thaw-vm-*}: {@code vm.json}, {@code qemu.pid}, the QMP socket and the restore's
 * {@link PostcopyRestore.Marker}), so that {@code thaw restore --resume} or the next restore of the same image resumes them.
 */
public final class PausedRestores {
    private static final ObjectMapper JSON = new ObjectMapper();

    private PausedRestores() {}

    /**
     * One such restore.
     *
     * @param runDir  the QEMU's run directory (its QMP socket is {@code qmp.sock} there)
     * @param vmName  the QEMU's name ({@code -name guest=...})
     * @param qemuPid the QEMU's pid, alive when listed
     */
    public record Paused(Path runDir, String vmName, long qemuPid, PostcopyRestore.Marker marker) {}

    /** Every restore whose Thaw is gone and whose QEMU is alive, in {@code parent} (normally {@link QemuVm#RUN_DIR_PARENT}). */
    public static List<Paused> list(Path parent) {
        List<Paused> out = new ArrayList<>();
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(parent, QemuVm.RUN_DIR_PREFIX + "*")) {
            for (Path dir : dirs) of(dir).ifPresent(out::add);
        } catch (IOException e) {
            throw new RestoreException("cannot list the QEMU run directories in " + parent + ": " + e.getMessage(), e);
        }
        return out;
    }

    /**
     * Removes the run directories of restores whose Thaw and QEMU both died (a Thaw killed before QEMU ran the guest: QEMU then
     * fails the load and exits), which nobody else would; returns how many.
     */
    public static int removeDead(Path parent) {
        int removed = 0;
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(parent, QemuVm.RUN_DIR_PREFIX + "*")) {
            for (Path dir : dirs) {
                Optional<PostcopyRestore.Marker> marker = PostcopyRestore.Marker.read(dir);
                if (marker.isEmpty() || !marker.get().thawGone() || qemuAlive(dir)) continue;
                dev.thaw.util.FileTrees.deleteQuietly(dir);
                removed++;
            }
        } catch (IOException e) {
            throw new RestoreException("cannot list the QEMU run directories in " + parent + ": " + e.getMessage(), e);
        }
        return removed;
    }

    private static boolean qemuAlive(Path runDir) {
        try {
            long pid = Long.parseLong(Files.readString(runDir.resolve(QemuVm.PID_FILE)).trim());
            return ProcessHandle.of(pid).filter(ProcessHandle::isAlive).isPresent();
        } catch (IOException | NumberFormatException e) {
            return false;
        }
    }

    /** The paused restore of this run directory, if it holds one whose Thaw is gone and whose QEMU lives. */
    static Optional<Paused> of(Path runDir) {
        Optional<PostcopyRestore.Marker> marker = PostcopyRestore.Marker.read(runDir);
        if (marker.isEmpty() || !marker.get().thawGone()) return Optional.empty();
        try {
            String name = JSON.readTree(runDir.resolve(QemuVm.CONFIG_FILE).toFile()).path("name").asText("");
            long pid = Long.parseLong(Files.readString(runDir.resolve(QemuVm.PID_FILE)).trim());
            if (name.isEmpty() || ProcessHandle.of(pid).filter(ProcessHandle::isAlive).isEmpty()) return Optional.empty();
            return Optional.of(new Paused(runDir, name, pid, marker.get()));
        } catch (IOException | NumberFormatException e) {
            return Optional.empty();
        }
    }

    /** The paused restore of {@code image} ({@code thaw restore} resumes it instead of starting another), if exactly one. */
    public static Optional<Paused> ofImage(Path parent, CheckpointImage image) {
        List<Paused> found = list(parent).stream().filter(p -> p.marker().imageId().equals(image.manifest().imageId())).toList();
        if (found.size() > 1) {
            throw new RestoreException("image " + image.directory() + ": expected at most one paused restore to resume, actual "
                    + found.size() + " (" + found.stream().map(Paused::vmName).toList() + "): resume one with --resume NAME", null);
        }
        return found.stream().findFirst();
    }

    /**
     * The paused restore named by {@code nameOrSocket}: a QEMU's name, or the path of its QMP socket (or of its run directory).
     */
    public static Paused find(Path parent, String nameOrSocket) {
        Path path = Path.of(nameOrSocket);
        if (nameOrSocket.contains("/")) { // a path (VM names have no slash)
            Path dir = Files.isDirectory(path) ? path : path.toAbsolutePath().getParent();
            return of(dir).orElseThrow(() -> new RestoreException(nameOrSocket + ": expected the QMP socket of a paused lazy or ws"
                    + " restore whose Thaw is gone, actual " + why(dir), null));
        }
        List<Paused> all = list(parent);
        return all.stream().filter(p -> p.vmName().equals(nameOrSocket)).findFirst().orElseThrow(() -> new RestoreException(
                "--resume " + nameOrSocket + ": expected the name or QMP socket of a paused restore whose Thaw is gone, actual none of"
                        + " that name; paused restores: " + (all.isEmpty() ? "none" : all.stream().map(Paused::vmName).toList()), null));
    }

    private static String why(Path dir) {
        Optional<PostcopyRestore.Marker> marker = PostcopyRestore.Marker.read(dir);
        if (marker.isEmpty()) return "no lazy or ws restore recorded in " + dir;
        if (!marker.get().thawGone()) return "a restore still served by Thaw pid " + marker.get().thawPid();
        return "a restore whose QEMU is gone";
    }
}
