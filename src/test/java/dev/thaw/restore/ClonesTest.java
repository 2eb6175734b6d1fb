package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.HostForward;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import dev.thaw.testing.RestoredGuest;
import dev.thaw.testing.TestHost;
import dev.thaw.util.ListeningPorts;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two clones of one image on the real QEMU, restored lazily at once: each the saved guest's memory and workload, each its own
 * VM generation ID (QEMU's and in guest memory), its own forwarded host port; the NIC's MAC as saved while the guest runs.
 */
class ClonesTest {
    private static final String SAVED_MAC = "52:54:00:12:34:56";
    /** An e1000's, created first: QMP's query-rx-filter omits it (no receive filter it reports), the virtio NIC it lists. */
    private static final String SAVED_E1000_MAC = "52:54:00:12:34:57";
    private static final int GUEST_PORT = 7;

    @TempDir
    Path dir;

    @Test
    void twoLazyClonesRunTheSavedGuestEachWithItsOwnIdentity() throws Exception {
        int fixedPort;
        try (ServerSocket probe = new ServerSocket(0)) {
            fixedPort = probe.getLocalPort(); // free now; the source forwards it, and two clones could not both
        }
        VmConfig small = TestHost.smallGuestConfig("thaw-test-clones-src");
        List<String> args = new ArrayList<>(small.extraArgs());
        args.addAll(List.of("-netdev", "user,id=lan0", "-device", "e1000,netdev=lan0,mac=" + SAVED_E1000_MAC + ",addr=06",
                "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:" + fixedPort + "-:" + GUEST_PORT,
                "-device", "virtio-net-pci,netdev=net0,mac=" + SAVED_MAC + ",addr=05"));
        VmConfig config = small.withExtraArgs(args);
        assertThat(RestoreIdentity.hasVmGenerationId(config)).as("Thaw boots its guests with a vmgenid device").isTrue();

        java.util.concurrent.atomic.AtomicReference<String> source = new java.util.concurrent.atomic.AtomicReference<>();
        RestoredGuest.SavedGuest saved = RestoredGuest.saveGuest(config, dir.resolve("image"), vm -> {
            source.set(vm.qmp().execute("query-vm-generation-id").path("guid").asText());
            assertThat(guidInGuestMemory(vm, UUID.fromString(source.get()))).as("the source's GUID in its guest memory").isTrue();
        });
        String sourceGuid = source.get();

        List<Clones.Clone> clones;
        try (CheckpointImage image = CheckpointImage.open(saved.imageDir())) {
            assertThat(Clones.notes(IncomingQemu.savedConfig(image))).singleElement().asString().contains("keep the saved MAC");
            clones = Clones.restore(image, Restorer.Mode.LAZY, "thaw-test-clone", 2, WorkingSetChoice.defaults(), o -> o, s -> {});
        }
        try {
            assertThat(clones).extracting(Clones.Clone::name).containsExactly("thaw-test-clone-1", "thaw-test-clone-2");
            for (Clones.Clone c : clones) {
                QemuVm vm = c.outcome().vm();
                assertThat(vm.qmp().queryMigrate().completed()).isTrue();
                assertThat(vm.qmp().queryStatus().running()).isTrue();
                // QEMU's GUID is the one the restore chose, not the source's, and vmgenid's post_load wrote it into guest memory.
                UUID guid = UUID.fromString(c.vmGenerationId().orElseThrow());
                assertThat(RestoreIdentity.vmGenerationIdOf(vm.config())).contains(guid);
                assertThat(guid.toString()).isNotEqualTo(sourceGuid);
                assertThat(guidInGuestMemory(vm, guid)).as(c.name() + ": its GUID in guest memory").isTrue();
                assertThat(guidInGuestMemory(vm, UUID.fromString(sourceGuid))).as(c.name() + ": the source's GUID gone").isFalse();
                // QEMU 7.2 migrates the NIC's MAC: the running guest keeps the saved one whatever the command line says.
                // Each NIC by QEMU's name and type, its running MAC from query-rx-filter (virtio) or as saved (e1000).
                assertThat(c.nics()).extracting(Clones.Nic::name).containsExactly("e1000.0", "virtio-net-pci.0");
                assertThat(c.nics()).extracting(Clones.Nic::guestMac).containsExactly(SAVED_E1000_MAC, SAVED_MAC);
                assertThat(c.nics()).extracting(Clones.Nic::resetTakesCommandLineMac).containsExactly(false, true);
                assertThat(c.nics()).extracting(Clones.Nic::commandLineMac).doesNotContain(SAVED_MAC, SAVED_E1000_MAC, "default");
                HostForward forward = c.forwards().getFirst();
                assertThat(c.forwards()).hasSize(1);
                assertThat(forward.guestPort()).isEqualTo(GUEST_PORT);
                assertThat(forward.hostAddress()).isEqualTo("127.0.0.1");
                assertThat(ListeningPorts.of(vm.pid())).contains(forward.hostPort());
                RestoredGuest.assertSameMemoryAndRunsOn(vm, saved.before(), saved.lastSeqBefore());
            }
            assertThat(clones.get(0).vmGenerationId()).isNotEqualTo(clones.get(1).vmGenerationId());
            assertThat(clones.get(0).nics().get(1).commandLineMac()).isNotEqualTo(clones.get(1).nics().get(1).commandLineMac());
            assertThat(clones.get(0).forwards().getFirst().hostPort()).isNotEqualTo(clones.get(1).forwards().getFirst().hostPort());
            for (Clones.Clone c : clones) {
                System.err.printf("%s: running after %.2f s, completed after %.2f s, vmgenid %s, MAC %s (command line %s), %s%n", c.name(),
                        c.outcome().runningSeconds(), c.outcome().completedSeconds(), c.vmGenerationId().orElseThrow(),
                        c.nics().get(1).guestMac(), c.nics().get(1).commandLineMac(), c.forwards());
            }
        } finally {
            for (Clones.Clone c : clones) c.outcome().vm().close();
        }
        for (Clones.Clone c : clones) assertThat(c.outcome().vm().isAlive()).isFalse();
    }

    @Test
    void aCloneWhoseQemuDiesWhileRestoringFailsTheRestoreByNameAndLeavesNoQemu() throws Exception {
        RestoredGuest.SavedGuest saved = RestoredGuest.saveGuest(TestHost.smallGuestConfig("thaw-test-failclone-src"), dir.resolve("image"),
                vm -> {});
        String victim = "thaw-test-failclone-2";
        // Killed once its QEMU answers QMP: the clone's restore is then under way (launched, incoming, or streaming).
        Thread killer = Thread.ofPlatform().daemon().name("kill-" + victim).start(() -> {
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (System.nanoTime() < deadline) {
                java.util.Optional<QemuVm> vm = QemuVm.live(victim).filter(v -> v.qmp() != null);
                if (vm.isPresent()) {
                    ProcessHandle.of(vm.get().pid()).ifPresent(ProcessHandle::destroyForcibly);
                    return;
                }
                Thread.onSpinWait();
            }
        });
        Throwable failure;
        try (CheckpointImage image = CheckpointImage.open(saved.imageDir())) {
            failure = org.assertj.core.api.Assertions.catchThrowable(() -> Clones.restore(image, Restorer.Mode.LAZY, "thaw-test-failclone", 2,
                    WorkingSetChoice.defaults(), o -> o, m -> {}));
        }
        killer.join(60_000);
        assertThat(failure).as("the restore of two clones, one killed").isInstanceOf(RestoreException.class).hasMessageContaining(victim);
        assertThat(QemuVm.live()).as("no QEMU of either clone left").noneMatch(vm -> vm.name().startsWith("thaw-test-failclone-"));
        assertThat(ProcessHandle.allProcesses().filter(p -> p.info().commandLine().orElse("").contains("thaw-test-failclone-")))
                .as("no process of either clone on the host").isEmpty();
    }

    /**
     * Whether the GUID lies in the guest's memory as vmgenid writes it (little-endian fields), in the top 4 MiB of its RAM, where
     * SeaBIOS allocates the GUID's buffer (high memory, below 4 GiB).
     */
    private boolean guidInGuestMemory(QemuVm vm, UUID guid) {
        long ramBytes = vm.config().memoryMiB() << 20;
        long window = 4L << 20;
        Path dump = dir.resolve(vm.name() + "-top.bin");
        vm.qmp().execute("pmemsave", JsonNodeFactory.instance.objectNode().put("val", ramBytes - window).put("size", window)
                .put("filename", dump.toString()));
        byte[] memory;
        try {
            memory = Files.readAllBytes(dump);
            Files.delete(dump);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        byte[] le = littleEndian(guid);
        outer:
        for (int i = 0; i + le.length <= memory.length; i++) {
            for (int j = 0; j < le.length; j++) if (memory[i + j] != le[j]) continue outer;
            return true;
        }
        return false;
    }

    /** As QEMU's qemu_uuid_bswap: the first three fields little-endian, the rest as is. */
    private static byte[] littleEndian(UUID guid) {
        java.nio.ByteBuffer be = java.nio.ByteBuffer.allocate(16).putLong(guid.getMostSignificantBits()).putLong(guid.getLeastSignificantBits());
        byte[] b = be.array();
        byte[] le = b.clone();
        for (int i = 0; i < 4; i++) le[i] = b[3 - i];
        le[4] = b[5];
        le[5] = b[4];
        le[6] = b[7];
        le[7] = b[6];
        return le;
    }
}
