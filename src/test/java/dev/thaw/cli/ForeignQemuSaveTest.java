package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.guest.GuestAgent;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import dev.thaw.testing.TestHost;
import dev.thaw.util.ExternalCommand;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 14's first slice against the real QEMU: a QEMU started by a hand-written command line (no vm.json, no --vm-config)
 * with 2 vCPUs and a qcow2 disk is saved by {@code thaw save --qmp} with its disk; two restores at once (eager and lazy) each see the disk as it was at the
 * save and write their own, and nothing reaches the base; a QEMU with an option Thaw cannot replay is refused while its guest
 * runs on; a base changed after the save is refused by the restore, naming the disk.
 */
class ForeignQemuSaveTest {
    private static final Duration BOOT = Duration.ofMinutes(3);

    /** A QEMU the test starts itself, as a user would: its own sockets, its console in a file, killed at the end. */
    private record HandStarted(Process process, Path qmpSocket, Path agentSocket) implements AutoCloseable {
        /** The demo guest's kernel booted by QEMU, with {@code disk} (if any) as a virtio disk. */
        static HandStarted start(Path runDir, Path disk, List<String> more) throws Exception {
            List<String> boot = new ArrayList<>(List.of("-kernel", TestHost.guest().kernel().toString(), "-initrd",
                    TestHost.guest().initrd().toString(), "-append", "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init"));
            if (disk != null) boot.addAll(List.of("-drive", "file=" + disk + ",format=qcow2,if=virtio"));
            boot.addAll(more);
            return startWith(runDir, boot);
        }

        /** A QEMU with its serial ports and QMP socket, booting as {@code boot} (the rest of its command line) says. */
        static HandStarted startWith(Path runDir, List<String> boot) throws Exception {
            return startWith(runDir, boot, true);
        }

        /** @param nodefaults whether QEMU goes without its default devices (a VGA, IDE CD-ROM and floppy drives, a NIC, ...) */
        static HandStarted startWith(Path runDir, List<String> boot, boolean nodefaults) throws Exception {
            Path qmp = runDir.resolve("qmp.sock");
            Path agent = runDir.resolve("agent.sock");
            List<String> command = new ArrayList<>(List.of(QemuVm.QEMU_BINARY, "-machine", "pc", "-accel", "tcg", "-m", "256",
                    "-smp", "2", "-no-user-config", "-display", "none",
                    "-serial", "file:" + runDir.resolve("console.log"),
                    "-serial", "unix:" + agent + ",server=on,wait=off",
                    "-qmp", "unix:" + qmp + ",server=on,wait=off"));
            if (nodefaults) command.add("-nodefaults");
            command.addAll(boot);
            Process p = new ProcessBuilder(command).redirectOutput(runDir.resolve("stdout.log").toFile())
                    .redirectError(runDir.resolve("stderr.log").toFile()).start();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (!(Files.exists(qmp) && Files.exists(agent))) {
                if (!p.isAlive() || System.nanoTime() > deadline) {
                    p.destroyForcibly();
                    throw new IllegalStateException("the hand-started QEMU did not create its sockets within 30 s: "
                            + Files.readString(runDir.resolve("stderr.log")));
                }
                Thread.sleep(20);
            }
            return new HandStarted(p, qmp, agent);
        }

        boolean running() {
            try (QmpClient qmp = QmpClient.connect(qmpSocket, "hand-started", Duration.ofSeconds(10), process::isAlive)) {
                return qmp.queryStatus().running();
            }
        }

        @Override
        public void close() throws Exception {
            process.destroy();
            if (!process.waitFor(5, java.util.concurrent.TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, java.util.concurrent.TimeUnit.SECONDS);
            }
        }
    }

    private static final String SOURCE_GUID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

    @Test
    void savesAHandStartedQemuWithItsDiskRestoresTwoClonesAndRefusesWhatItCannotReplay(@TempDir Path dir) throws Exception {
        Path disk = dir.resolve("data.qcow2");
        ExternalCommand.check(List.of("qemu-img", "create", "-q", "-f", "qcow2", disk.toString(), "64M"), Duration.ofSeconds(30));
        Path image = dir.resolve("img");
        // A second disk in the other form (-blockdev and -device), raw and read-only, placed after the first (slot 5): the guest's
        // /dev/vda stays the qcow2 one, and a read-only disk is referenced as it is.
        Path readOnly = dir.resolve("ro.img");
        ExternalCommand.check(List.of("qemu-img", "create", "-q", "-f", "raw", readOnly.toString(), "4M"), Duration.ofSeconds(30));
        // A third, raw and writable in the -blockdev form (slot 6): frozen as a raw base under a qcow2 overlay as the first is.
        Path rawDisk = dir.resolve("rw.img");
        ExternalCommand.check(List.of("qemu-img", "create", "-q", "-f", "raw", rawDisk.toString(), "4M"), Duration.ofSeconds(30));
        List<String> roDisk = List.of("-blockdev", "driver=raw,node-name=ro0,read-only=on,file.driver=file,file.filename=" + readOnly,
                "-device", "virtio-blk-pci,drive=ro0,id=vd1,addr=05",
                "-blockdev", "driver=raw,node-name=rw1,file.driver=file,file.filename=" + rawDisk,
                "-device", "virtio-blk-pci,drive=rw1,id=vd2,addr=06", "-device", "vmgenid,guid=" + SOURCE_GUID);
        Path runDir = Files.createTempDirectory(Path.of("/tmp"), "thaw-test-foreign-"); // short: unix socket paths
        Path image2 = dir.resolve("img2");
        GuestAgent.DiskSum saved;
        GuestAgent.DiskSum savedAgain;
        String baseSha;
        String rawSha;
        try (HandStarted source = HandStarted.start(runDir, disk, roDisk);
             GuestAgent agent = GuestAgent.connect(source.agentSocket(), "hand-started")) {
            agent.awaitReady(BOOT);
            agent.diskWrite(0, 8, 1);
            saved = agent.diskSum(0, 8);
            assertThat(saved.byteCount()).isEqualTo(8L << 20);

            ImageCommandsTest.Run save = ImageCommandsTest.run("save", "--qmp", source.qmpSocket().toString(), "--out", image.toString(),
                    "--keep-running", "--json");
            assertThat(save.exit()).as(save.err()).isZero();
            JsonNode report = Json.MAPPER.readTree(save.out());
            assertThat(report.path("foreignPid").asLong()).isEqualTo(source.process().pid());
            assertThat(report.path("guestRunning").asBoolean()).isTrue();
            JsonNode savedDisk = report.path("disks").get(0);
            assertThat(report.path("disks")).hasSize(3);
            assertThat(report.path("disks").get(2).path("base").asText()).isEqualTo(rawDisk.toString());
            assertThat(report.path("disks").get(2).path("format").asText()).isEqualTo("raw");
            assertThat(report.path("disks").get(2).path("readOnly").asBoolean()).isFalse();
            assertThat(report.path("disks").get(1).path("base").asText()).isEqualTo(readOnly.toString());
            assertThat(report.path("disks").get(1).path("readOnly").asBoolean()).isTrue();
            assertThat(report.path("disks").get(1).path("pciAddress").asText()).isEqualTo("05.0");
            assertThat(savedDisk.path("base").asText()).isEqualTo(disk.toString());
            assertThat(savedDisk.path("format").asText()).isEqualTo("qcow2");
            assertThat(savedDisk.path("virtualByteSize").asLong()).isEqualTo(64L << 20);
            assertThat(report.path("sourceOverlays")).as("a read-only disk needs no overlay").hasSize(2);
            Path sourceOverlay = Path.of(report.path("sourceOverlays").get(0).asText());
            assertThat(sourceOverlay).exists().hasParent(disk.getParent());
            assertThat(image.resolve("guest/kernel")).hasSameBinaryContentAs(TestHost.guest().kernel());
            baseSha = sha256(disk);
            rawSha = sha256(rawDisk);

            // The source goes on, on its new overlay: what it writes now is not the image's.
            agent.diskWrite(0, 8, 2);
            assertThat(agent.diskSum(0, 8)).isNotEqualTo(saved);
            assertThat(sha256(disk)).as("the base is frozen for the image").isEqualTo(baseSha);

            // A second checkpoint of the same guest: its base is the first save's overlay (a qcow2 on the first base).
            savedAgain = agent.diskSum(0, 8);
            ImageCommandsTest.Run again = ImageCommandsTest.run("save", "--qmp", source.qmpSocket().toString(), "--out",
                    image2.toString(), "--keep-running", "--json");
            assertThat(again.exit()).as(again.err()).isZero();
            assertThat(Json.MAPPER.readTree(again.out()).path("disks").get(0).path("base").asText()).isEqualTo(sourceOverlay.toString());
            assertThat(sha256(disk)).isEqualTo(baseSha);

            // A device added by device_add is on no command line: refused before the guest is stopped, naming it (query-pci's
            // cross-check), even where every device of the command line is placed on it; the guest runs on.
            try (QmpClient qmp = QmpClient.connect(source.qmpSocket(), "hand-started", Duration.ofSeconds(10), source.process()::isAlive)) {
                qmp.execute("device_add", Json.MAPPER.createObjectNode().put("driver", "virtio-balloon-pci").put("id", "hot").put("addr", "0x9"));
            }
            ImageCommandsTest.Run hot = ImageCommandsTest.run("save", "--qmp", source.qmpSocket().toString(), "--out",
                    dir.resolve("hot").toString(), "--keep-running");
            assertThat(hot.exit()).isNotZero();
            assertThat(hot.err()).contains("actual also a device at 09.0 (class 0x00ff, id 'hot') in query-pci");
            assertThat(source.running()).as("the refused guest runs on").isTrue();
            assertThat(dir.resolve("hot")).doesNotExist();
        } finally {
            dev.thaw.util.FileTrees.deleteQuietly(runDir);
        }

        ImageCommandsTest.Run inspect = ImageCommandsTest.run("inspect", image.toString());
        assertThat(inspect.exit()).as(inspect.err()).isZero();
        assertThat(inspect.out()).contains("disk disk0: base " + disk).contains("qcow2, 64 MiB").contains("unchanged since the save")
                .contains("disk disk1: base " + readOnly).contains("read-only");

        // Two restores at once, one eager and one lazy (QEMU as a postcopy destination activates its disks at RUN): each starts
        // from the disk as saved, and each writes its own overlay.
        List<CompletableFuture<Restorer.Outcome>> restores = new ArrayList<>();
        for (Restorer.Mode mode : List.of(Restorer.Mode.EAGER, Restorer.Mode.LAZY)) {
            String name = "thaw-test-clone-" + mode.label();
            restores.add(CompletableFuture.supplyAsync(() -> {
                try (CheckpointImage img = CheckpointImage.open(image)) {
                    return Restorer.restore(img, mode, name, WorkingSetChoice.defaults(), o -> o, s -> {});
                }
            }));
        }
        List<QemuVm> clones = new ArrayList<>();
        try {
            for (CompletableFuture<Restorer.Outcome> r : restores) clones.add(r.join().vm());
            List<GuestAgent.DiskSum> written = new ArrayList<>();
            for (int i = 0; i < clones.size(); i++) {
                QemuVm clone = clones.get(i);
                assertThat(clone.config().cpuCount()).as("-smp 2 replayed").isEqualTo(2);
                assertThat(clone.qmp().execute("query-cpus-fast").size()).as(clone.name() + ": vCPUs").isEqualTo(2);
                assertThat(clone.config().disks()).hasSize(3);
                assertThat(clone.config().disks().get(0)).satisfies(d -> {
                    assertThat(d.format()).isEqualTo("qcow2");
                    assertThat(d.file()).isNotEqualTo(disk).startsWith(dir.resolve("img.disks"));
                });
                assertThat(clone.config().disks().get(1)).satisfies(d -> {
                    assertThat(d.file()).isEqualTo(readOnly);
                    assertThat(d.readOnly()).isTrue();
                });
                assertThat(clone.config().disks().get(2)).satisfies(d -> {
                    assertThat(d.format()).as("an overlay on the raw base").isEqualTo("qcow2");
                    assertThat(d.file()).isNotEqualTo(rawDisk).startsWith(dir.resolve("img.disks"));
                    assertThat(d.pciAddress()).isEqualTo("06.0");
                });
                try (GuestAgent agent = GuestAgent.connect(clone)) {
                    agent.awaitReady(Duration.ofSeconds(30));
                    assertThat(agent.diskSum(0, 8)).as(clone.name() + ": the disk as saved").isEqualTo(saved);
                    agent.diskWrite(8, 4, 10 + i);
                    written.add(agent.diskSum(8, 4));
                }
            }
            assertThat(written.get(0)).as("each clone writes its own disk").isNotEqualTo(written.get(1));
            // The hand-started QEMU's vmgenid GUID is replaced at each restore (RestoreIdentity).
            List<String> guids = clones.stream().map(c -> c.qmp().execute("query-vm-generation-id").path("guid").asText()).toList();
            assertThat(guids).doesNotContain(SOURCE_GUID).doesNotHaveDuplicates().allMatch(g -> g.matches("[0-9a-f-]{36}"));
            for (int i = 0; i < clones.size(); i++) {
                try (GuestAgent agent = GuestAgent.connect(clones.get(i))) {
                    assertThat(agent.diskSum(8, 4)).as(clones.get(i).name() + " keeps its own writes").isEqualTo(written.get(i));
                }
            }
        } finally {
            for (QemuVm clone : clones) clone.close();
            for (CompletableFuture<Restorer.Outcome> r : restores) r.thenAccept(o -> o.vm().close());
        }
        assertThat(sha256(disk)).as("no restore wrote the base").isEqualTo(baseSha);
        assertThat(sha256(rawDisk)).as("nor the raw one").isEqualTo(rawSha);
        // This one's overlays where the restore is told (restore --disk-dir), not beside the image.
        Path ownDisks = dir.resolve("own-disks");
        try (CheckpointImage img2 = CheckpointImage.open(image2);
             QemuVm clone = Restorer.restore(img2, Restorer.Mode.EAGER, "thaw-test-second",
                     dev.thaw.restore.RestoreIdentity.single().withDiskDirectory(java.util.Optional.of(ownDisks)), WorkingSetChoice.defaults(),
                     o -> o, m -> {}).vm();
             GuestAgent agent = GuestAgent.connect(clone)) {
            assertThat(clone.config().disks().get(0).file()).as("the overlay under --disk-dir").startsWith(ownDisks);
            assertThat(clone.config().disks().get(2).file()).startsWith(ownDisks);
            // A link beside the image to them: the pin a cache holding the image keeps it by (ImageCache.holdsOverlays).
            Path overlayDir = clone.config().disks().get(0).file().getParent();
            Path link = dev.thaw.restore.RestoreDisks.directoryFor(image2).resolve(overlayDir.getFileName());
            assertThat(Files.isSymbolicLink(link)).as(link + " a link").isTrue();
            assertThat(Files.readSymbolicLink(link)).isEqualTo(overlayDir.toAbsolutePath().normalize());
            agent.awaitReady(Duration.ofSeconds(30));
            assertThat(agent.diskSum(0, 8)).as("the second checkpoint's disk: what the source wrote after the first").isEqualTo(savedAgain);
        }
        assertThat(sha256(disk)).isEqualTo(baseSha);

        // An option Thaw cannot replay: refused before the guest is stopped, naming it; the guest runs on.
        Path otherDir = Files.createTempDirectory(Path.of("/tmp"), "thaw-test-foreign-");
        try (HandStarted other = HandStarted.start(otherDir, null, List.of("-device", "virtio-rng-pci"))) {
            ImageCommandsTest.Run refused = ImageCommandsTest.run("save", "--qmp", other.qmpSocket().toString(), "--out",
                    dir.resolve("refused").toString());
            assertThat(refused.exit()).isNotZero();
            assertThat(refused.err()).contains("-device virtio-rng-pci").contains("cannot be replayed").contains("expected");
            assertThat(other.running()).as("the refused guest runs on").isTrue();
            assertThat(dir.resolve("refused")).doesNotExist();
        } finally {
            dev.thaw.util.FileTrees.deleteQuietly(otherDir);
        }

        // The base changed after the save: every restore refuses it, naming the disk, before QEMU starts.
        try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
            f.seek(f.length() - 1);
            int b = f.read();
            f.seek(f.length() - 1);
            f.write(b ^ 0x5a);
        }
        ImageCommandsTest.Run changed = ImageCommandsTest.run("restore", image.toString(), "--mode", "eager", "--exit", "--name",
                "thaw-test-changed-base");
        assertThat(changed.exit()).isNotZero();
        assertThat(changed.err()).contains("disk disk0 (base " + disk + ") changed since the save").contains("SHA-256 expected");
        assertThat(QemuVm.live()).isEmpty();
    }

    /**
     * A guest its firmware boots from a disk (no -kernel, -initrd nor -append: SeaBIOS, given by a bare -bios name as QEMU looks
     * it up, boots SYSLINUX on the disk, which loads the demo guest's kernel): saved by {@code thaw save --qmp}, the image
     * carrying the firmware, and restored lazily, working-set first (from the lazy restore's trace) and eagerly, each on a fresh
     * overlay, by a QEMU without -kernel (its RAM blocks match the source's only then: -kernel adds an option ROM) with -bios
     * from the image: wsbench's memory, the disk and the agent as they were.
     */
    @Test
    void savesAGuestItsFirmwareBootsFromADiskAndRestoresItWithoutAKernel(@TempDir Path dir) throws Exception {
        Path disk = dir.resolve("boot.qcow2"); // the built disk is never written: the guest runs on an overlay of it
        ExternalCommand.check(List.of("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", TestHost.firmwareDisk().raw().toString(),
                disk.toString()), Duration.ofSeconds(30));
        Path image = dir.resolve("img");
        Path runDir = Files.createTempDirectory(Path.of("/tmp"), "thaw-test-firmware-");
        GuestAgent.MemSum cold;
        GuestAgent.DiskSum written;
        try (HandStarted source = HandStarted.startWith(runDir, List.of("-bios", "bios-256k.bin",
                "-drive", "file=" + disk + ",if=none,id=d0,format=qcow2", "-device", "virtio-blk-pci,drive=d0,addr=04,bootindex=0"));
             GuestAgent agent = GuestAgent.connect(source.agentSocket(), "firmware-booted")) {
            cold = awaitWsbench(runDir, agent);
            agent.diskWrite(36, 4, 7); // past the FAT partition's files: the guest runs from its initramfs
            written = agent.diskSum(36, 4);
            ImageCommandsTest.Run save = ImageCommandsTest.run("save", "--qmp", source.qmpSocket().toString(), "--out", image.toString(),
                    "--json");
            assertThat(save.exit()).as(save.err()).isZero();
            JsonNode report = Json.MAPPER.readTree(save.out());
            assertThat(report.path("foreignPid").asLong()).isEqualTo(source.process().pid());
            assertThat(report.path("disks").get(0).path("base").asText()).isEqualTo(disk.toString());
        } finally {
            dev.thaw.util.FileTrees.deleteQuietly(runDir);
        }
        assertThat(image.resolve("guest/firmware")).as("the image carries the firmware QEMU found in its data directory")
                .hasSameBinaryContentAs(Path.of("/usr/share/seabios/bios-256k.bin"));
        assertThat(image.resolve("guest/kernel")).doesNotExist();
        String baseSha = sha256(disk);
        for (Restorer.Mode mode : List.of(Restorer.Mode.LAZY, Restorer.Mode.WS, Restorer.Mode.EAGER)) {
            try (CheckpointImage img = CheckpointImage.open(image);
                 QemuVm clone = Restorer.restore(img, mode, "thaw-test-firmware-" + mode.label(), WorkingSetChoice.defaults(), o -> o,
                         s -> {}).vm();
                 GuestAgent agent = GuestAgent.connect(clone)) {
                List<String> argv = commandLine(clone);
                assertThat(argv).as(mode + ": the restore's QEMU boots no kernel").doesNotContain("-kernel", "-initrd", "-append");
                assertThat(argv).containsSubsequence("-bios", image.resolve("guest/firmware").toString());
                assertThat(argv).as("the disk's bootindex= kept").anyMatch(v -> v.matches("virtio-blk-pci,drive=disk0,addr=04\\.0,bootindex=0"));
                assertThat(clone.config().disks().getFirst().file()).isNotEqualTo(disk).startsWith(dir.resolve("img.disks"));
                agent.awaitReady(Duration.ofSeconds(30));
                assertThat(agent.memsumCold()).as(mode + ": wsbench's memory as saved").isEqualTo(cold);
                assertThat(agent.diskSum(36, 4)).as(mode + ": the disk as saved").isEqualTo(written);
                agent.diskWrite(36, 4, 20 + mode.ordinal());
            }
        }
        assertThat(sha256(disk)).as("no restore wrote the base").isEqualTo(baseSha);

        // The firmware in flash, OVMF's way (its code read-only in unit 0, its variables writable in unit 1; here SeaBIOS, which
        // runs from flash as well): the image carries both, and a restore runs on the code in the image and a copy of its own
        // of the variables, which its QEMU writes back (hw/block/pflash_cfi01.c, postload_update_cb) once the guest runs.
        Path code = dir.resolve("code.fd");
        Files.copy(Path.of("/usr/share/seabios/bios-256k.bin"), code);
        Path vars = dir.resolve("vars.fd");
        byte[] varsBytes = new byte[128 << 10];
        new java.util.Random(14).nextBytes(varsBytes); // not zeros: a copy that lost them would show
        Files.write(vars, varsBytes);
        Path flashDisk = dir.resolve("boot-flash.qcow2");
        ExternalCommand.check(List.of("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", TestHost.firmwareDisk().raw().toString(),
                flashDisk.toString()), Duration.ofSeconds(30));
        Path flashImage = dir.resolve("img-flash");
        GuestAgent.MemSum flashCold = bootAndSave("thaw-test-firmware-", List.of("-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + code,
                "-drive", "if=pflash,format=raw,unit=1,file=" + vars,
                "-drive", "file=" + flashDisk + ",if=none,id=d0,format=qcow2", "-device", "virtio-blk-pci,drive=d0,addr=04,bootindex=0"),
                true, flashImage);
        assertThat(flashImage.resolve("guest/flash0")).hasSameBinaryContentAs(code);
        assertThat(flashImage.resolve("guest/flash1")).hasSameBinaryContentAs(vars);
        try (CheckpointImage img = CheckpointImage.open(flashImage);
             QemuVm clone = Restorer.restore(img, Restorer.Mode.EAGER, "thaw-test-flash", WorkingSetChoice.defaults(), o -> o, s -> {}).vm();
             GuestAgent agent = GuestAgent.connect(clone)) {
            List<String> argv = commandLine(clone);
            assertThat(argv).doesNotContain("-kernel", "-bios")
                    .contains("if=pflash,format=raw,unit=0,file=" + flashImage.resolve("guest/flash0") + ",readonly=on");
            Path ownVars = clone.config().flash().get(1).file();
            assertThat(ownVars).as("the restore's own copy of the variables").startsWith(dir.resolve("img-flash.disks")).hasSameBinaryContentAs(vars);
            assertThat(argv).contains("if=pflash,format=raw,unit=1,file=" + ownVars);
            agent.awaitReady(Duration.ofSeconds(30));
            assertThat(agent.memsumCold()).as("wsbench's memory as saved").isEqualTo(flashCold);
        }
        assertThat(flashImage.resolve("guest/flash1")).as("the image's copy is never written").hasSameBinaryContentAs(vars);
    }

    @Test
    void savesAQemuWithItsDefaultDevicesAndRestoresThemWithItLazily(@TempDir Path dir) throws Exception {
        // No -nodefaults, as most users' scripts: QEMU adds a VGA (its 16 MiB vga.vram block), IDE CD-ROM and floppy drives
        // without media, a parallel port and an e1000 NIC on user networking. The restore's QEMU must have the same.
        Path image = dir.resolve("img");
        GuestAgent.MemSum cold = bootAndSave("thaw-test-defaults-", List.of("-kernel", TestHost.guest().kernel().toString(), "-initrd",
                TestHost.guest().initrd().toString(), "-append", "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init"
                        + " wsbench.total_mib=32 wsbench.ws_mib=8 wsbench.layout=contiguous"), false, image);
        try (CheckpointImage img = CheckpointImage.open(image);
             QemuVm clone = Restorer.restore(img, Restorer.Mode.LAZY, "thaw-test-defaults", WorkingSetChoice.defaults(), o -> o,
                     s -> {}).vm();
             GuestAgent agent = GuestAgent.connect(clone)) {
            assertThat(img.ramBlocks()).extracting(dev.thaw.migration.RamBlock::name).as("the default VGA's memory and NIC's ROM are in the image")
                    .contains("0000:00:02.0/vga.vram", "0000:00:03.0/e1000.rom");
            assertThat(commandLine(clone)).as("the restore's QEMU keeps QEMU's default devices").doesNotContain("-nodefaults")
                    .as("its default NIC made explicit, where QEMU put it, with its MAC")
                    .contains("e1000,netdev=thaw-nic0,addr=03.0,mac=52:54:00:12:34:56");
            agent.awaitReady(Duration.ofSeconds(30));
            assertThat(agent.memsumCold()).as("wsbench's memory as saved").isEqualTo(cold);
            List<String> devices = new ArrayList<>();
            for (JsonNode d : clone.qmp().execute("query-pci").get(0).path("devices")) devices.add(d.path("qdev_id").asText() + "/"
                    + d.path("class_info").path("desc").asText());
            assertThat(devices.toString()).as("PCI devices of the restored guest: " + devices).contains("VGA").contains("Ethernet");
        }
    }

    /**
     * The command line of an ordinary script: a NIC from the {@code -nic} shorthand and one from {@code -net nic} with
     * {@code -net user} (QEMU creates the first before the second whatever their order), a {@code -device} without
     * {@code addr=}, {@code -boot order=c} and {@code -L} with the default firmware in it. The save asks QMP where QEMU put each
     * device and which MAC it gave the NICs; the restore's QEMU gets them explicitly (each NIC as {@code -netdev user} and a
     * {@code -device}), the boot order as given and the firmware from the image, restores lazily with wsbench's memory as saved,
     * and has every PCI device where the source had it, the virtio NIC with the source's MAC.
     */
    @Test
    void savesTheShorthandsOfAnOrdinaryScriptAndRestoresTheirDevicesWhereTheyWere(@TempDir Path dir) throws Exception {
        Path image = dir.resolve("img");
        Path runDir = Files.createTempDirectory(Path.of("/tmp"), "thaw-test-shorthand-");
        Path firmwareDir = Files.createDirectory(dir.resolve("fw"));
        Files.copy(Path.of("/usr/share/seabios/bios-256k.bin"), firmwareDir.resolve("bios-256k.bin"));
        GuestAgent.MemSum cold;
        List<String> sourcePci;
        String sourceMac;
        try (HandStarted source = HandStarted.startWith(runDir, List.of("-kernel", TestHost.guest().kernel().toString(), "-initrd",
                TestHost.guest().initrd().toString(), "-append", "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init"
                        + " wsbench.total_mib=32 wsbench.ws_mib=8 wsbench.layout=contiguous",
                "-net", "nic,model=e1000", "-net", "user", "-nic", "user,model=virtio-net-pci", "-device", "virtio-balloon-pci",
                "-boot", "order=c", "-L", firmwareDir.toString()));
             GuestAgent agent = GuestAgent.connect(source.agentSocket(), "shorthand")) {
            cold = awaitWsbench(runDir, agent);
            try (QmpClient qmp = QmpClient.connect(source.qmpSocket(), "hand-started", Duration.ofSeconds(10), source.process()::isAlive)) {
                sourcePci = pciDevices(qmp);
                sourceMac = qmp.execute("query-rx-filter").get(0).path("main-mac").asText();
            }
            ImageCommandsTest.Run save = ImageCommandsTest.run("save", "--qmp", source.qmpSocket().toString(), "--out", image.toString());
            assertThat(save.exit()).as(save.err()).isZero();
        } finally {
            dev.thaw.util.FileTrees.deleteQuietly(runDir);
        }
        assertThat(sourcePci).as("QEMU placed the NICs and the balloon itself").filteredOn(d -> d.contains("Ethernet")).hasSize(2);
        assertThat(sourcePci).hasSize(7);
        assertThat(image.resolve("guest/firmware")).as("the default firmware QEMU found in -L, carried").hasSameBinaryContentAs(
                firmwareDir.resolve("bios-256k.bin"));
        try (CheckpointImage img = CheckpointImage.open(image);
             QemuVm clone = Restorer.restore(img, Restorer.Mode.LAZY, "thaw-test-shorthand", WorkingSetChoice.defaults(), o -> o,
                     s -> {}).vm();
             GuestAgent agent = GuestAgent.connect(clone)) {
            List<String> argv = commandLine(clone);
            assertThat(argv).containsSubsequence("-boot", "order=c").doesNotContain("-nic", "-net", "-L")
                    .containsSubsequence("-bios", image.resolve("guest/firmware").toString())
                    .contains("virtio-net-pci,netdev=thaw-nic0,vectors=0,addr=02.0,mac=" + sourceMac)
                    .contains("e1000,netdev=thaw-nic1,addr=03.0,mac=52:54:00:12:34:57");
            agent.awaitReady(Duration.ofSeconds(30));
            assertThat(agent.memsumCold()).as("wsbench's memory as saved").isEqualTo(cold);
            assertThat(pciDevices(clone.qmp())).as("every PCI device where the source had it").isEqualTo(sourcePci);
            assertThat(clone.qmp().execute("query-rx-filter").get(0).path("main-mac").asText()).isEqualTo(sourceMac);
        }
    }

    /** The devices on PCI bus 0 as query-pci lists them: address, class, vendor:device, id. */
    private static List<String> pciDevices(QmpClient qmp) {
        List<String> devices = new ArrayList<>();
        for (JsonNode d : qmp.execute("query-pci").get(0).path("devices")) {
            devices.add(String.format("%02x.%d %s %04x:%04x '%s'", d.path("slot").asInt(), d.path("function").asInt(),
                    d.path("class_info").path("desc").asText(), d.path("id").path("vendor").asInt(), d.path("id").path("device").asInt(),
                    d.path("qdev_id").asText()));
        }
        return devices;
    }

    /**
     * A hand-started QEMU booting as {@code boot} (with or without {@code -nodefaults}), saved by {@code thaw save --qmp} into
     * {@code image} once wsbench filled its region; the checksum of what wsbench never rewrites.
     */
    private static GuestAgent.MemSum bootAndSave(String runPrefix, List<String> boot, boolean nodefaults, Path image) throws Exception {
        Path runDir = Files.createTempDirectory(Path.of("/tmp"), runPrefix); // short: unix socket paths
        try (HandStarted source = HandStarted.startWith(runDir, boot, nodefaults);
             GuestAgent agent = GuestAgent.connect(source.agentSocket(), runPrefix)) {
            GuestAgent.MemSum cold = awaitWsbench(runDir, agent);
            ImageCommandsTest.Run save = ImageCommandsTest.run("save", "--qmp", source.qmpSocket().toString(), "--out", image.toString());
            assertThat(save.exit()).as(save.err()).isZero();
            return cold;
        } finally {
            dev.thaw.util.FileTrees.deleteQuietly(runDir);
        }
    }

    /** The command line a restore started its QEMU with, as the process has it. */
    private static List<String> commandLine(QemuVm vm) throws java.io.IOException {
        return List.of(Files.readString(Path.of("/proc/" + vm.pid() + "/cmdline")).split("\0"));
    }

    /** Waits until wsbench filled its region (its console line), then returns the checksum of what it never rewrites. */
    private static GuestAgent.MemSum awaitWsbench(Path runDir, GuestAgent agent) throws Exception {
        agent.awaitReady(BOOT);
        assertThat(Files.readString(runDir.resolve("console.log"))).as("SYSLINUX booted the demo guest's kernel").contains("thaw-init up");
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (!Files.readString(runDir.resolve("console.log")).contains("wsbench ready")) {
            assertThat(System.nanoTime()).as("wsbench filled its region within 60 s").isLessThan(deadline);
            Thread.sleep(100);
        }
        return agent.memsumCold();
    }

    private static String sha256(Path file) throws Exception {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        try (var in = new java.security.DigestInputStream(Files.newInputStream(file), sha)) {
            in.transferTo(java.io.OutputStream.nullOutputStream());
        }
        return HexFormat.of().formatHex(sha.digest());
    }
}
