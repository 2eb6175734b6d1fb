package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.qemu.Accel;
import dev.thaw.qemu.VmConfig;
import java.nio.file.Path;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/** Each restore's and each clone's identity, and the saved command line rewritten for it (pure). */
class RestoreIdentityTest {
    private static final String IMAGE = "0b6c8d0e-2f0a-4c1e-9d3b-5a7e1f2c3d4e";
    private static final UUID GUID = UUID.fromString("11111111-2222-4333-8444-555555555555");

    private static VmConfig saved(List<String> extraArgs) {
        return new VmConfig("src", "pc-i440fx-7.2", Accel.TCG, 512, 1, Path.of("/k"), Path.of("/i"), "console=ttyS0", false, false,
                extraArgs);
    }

    private static final List<String> NETWORKED = List.of("-netdev",
            "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:5353-10.0.2.15:53",
            "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56,addr=05", "-device", "vmgenid");

    @Test
    void everyRestoreGivesTheVmgenidDeviceItsOwnGuidAndKeepsTheRestOfASingleRestoreAsSaved() {
        VmConfig c = new RestoreIdentity(GUID, 1, 1, IMAGE).applyTo(saved(NETWORKED));
        assertThat(c.extraArgs()).containsExactly("-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:5353-10.0.2.15:53",
                "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56,addr=05", "-device", "vmgenid,guid=" + GUID);
        assertThat(RestoreIdentity.vmGenerationIdOf(c)).contains(GUID);
        // A foreign guest's own GUID is replaced, not kept: a restore is a new generation of the VM.
        VmConfig foreign = saved(List.of("-device", "vmgenid,id=gen0,guid=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"));
        assertThat(new RestoreIdentity(GUID, 1, 1, IMAGE).applyTo(foreign).extraArgs()).containsExactly("-device", "vmgenid,id=gen0,guid=" + GUID);
        // Two restores, two GUIDs.
        assertThat(RestoreIdentity.single().vmGenerationId()).isNotEqualTo(RestoreIdentity.single().vmGenerationId());
    }

    @Test
    void aGuestSavedWithoutVmgenidGetsNone() {
        VmConfig old = saved(List.of("-device", "virtio-balloon-pci,addr=06"));
        VmConfig c = RestoreIdentity.clone(IMAGE, 2, 3).applyTo(old);
        assertThat(c.extraArgs()).isEqualTo(old.extraArgs());
        assertThat(RestoreIdentity.hasVmGenerationId(c)).isFalse();
        assertThat(RestoreIdentity.vmGenerationIdOf(c)).isEmpty();
        assertThat(Clones.notes(old)).singleElement().asString().contains("no vmgenid device");
    }

    @Test
    void clonesGetKernelChosenHostPortsAndDerivedLocallyAdministeredMacs() {
        VmConfig one = new RestoreIdentity(GUID, 1, 2, IMAGE).applyTo(saved(NETWORKED));
        VmConfig two = new RestoreIdentity(GUID, 2, 2, IMAGE).applyTo(saved(NETWORKED));
        assertThat(one.extraArgs().get(1)).isEqualTo("user,id=net0,hostfwd=tcp:127.0.0.1:0-:22,hostfwd=udp:127.0.0.1:0-10.0.2.15:53");
        assertThat(two.extraArgs().get(1)).isEqualTo(one.extraArgs().get(1));
        String mac1 = RestoreIdentity.nics(one).getFirst().mac();
        String mac2 = RestoreIdentity.nics(two).getFirst().mac();
        assertThat(mac1).isNotEqualTo(mac2).isNotEqualTo("52:54:00:12:34:56").matches("(?:[0-9a-f]{2}:){5}[0-9a-f]{2}");
        for (String mac : List.of(mac1, mac2)) {
            int first = Integer.parseInt(mac.substring(0, 2), 16);
            assertThat(first & 0x03).as("unicast, locally administered: " + mac).isEqualTo(0x02);
        }
        assertThat(one.extraArgs().get(3)).isEqualTo("virtio-net-pci,netdev=net0,mac=" + mac1 + ",addr=05");
        // Deterministic: the same image and clone give the same MAC; another image another.
        assertThat(RestoreIdentity.mac(IMAGE, 1, 0)).isEqualTo(mac1);
        assertThat(RestoreIdentity.mac(UUID.randomUUID().toString(), 1, 0)).isNotEqualTo(mac1);
        // A NIC without a MAC (QEMU would pick 52:54:00:12:34:56 for every clone) gets one.
        VmConfig unset = RestoreIdentity.clone(IMAGE, 1, 2).applyTo(saved(List.of("-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0")));
        assertThat(unset.extraArgs().get(3)).isEqualTo("virtio-net-pci,netdev=n0,mac=" + mac1);
        // QEMU's default NIC of a foreign guest, replayed explicitly (ForeignCommandLine), gets one too.
        VmConfig e1000 = RestoreIdentity.clone(IMAGE, 1, 2).applyTo(saved(List.of("-netdev", "user,id=thaw-nic0",
                "-device", "e1000,netdev=thaw-nic0,addr=03.0,mac=52:54:00:12:34:56")));
        assertThat(e1000.extraArgs().get(3)).isEqualTo("e1000,netdev=thaw-nic0,addr=03.0,mac=" + mac1);
    }

    @Test
    void nicsAreNamedAsQemuNamesThemAndOnlyAnE1000KeepsTheSavedMacAtAReset() {
        VmConfig c = saved(List.of("-netdev", "user,id=a", "-device", "e1000,netdev=a,addr=03.0,mac=52:54:00:12:34:56",
                "-netdev", "user,id=b", "-device", "virtio-net-pci,netdev=b,addr=04", "-netdev", "user,id=c",
                "-device", "e1000,netdev=c,id=lan,addr=05", "-netdev", "user,id=d", "-device", "e1000,netdev=d,addr=06",
                "-netdev", "user,id=e", "-device", "e1000e,netdev=e,addr=07"));
        // net/net.c's assign_name: TYPE.N, N counting the earlier NICs of that type, named or not.
        assertThat(RestoreIdentity.nics(c)).containsExactly(
                new RestoreIdentity.CommandLineNic("e1000.0", "e1000", "52:54:00:12:34:56"),
                new RestoreIdentity.CommandLineNic("virtio-net-pci.0", "virtio-net-pci", "default"),
                new RestoreIdentity.CommandLineNic("lan", "e1000", "default"),
                new RestoreIdentity.CommandLineNic("e1000.2", "e1000", "default"),
                new RestoreIdentity.CommandLineNic("e1000e.0", "e1000e", "default"));
        assertThat(RestoreIdentity.nics(c)).extracting(RestoreIdentity.CommandLineNic::resetTakesCommandLineMac)
                .containsExactly(false, true, false, false, true);
        assertThat(Clones.notes(c)).last().asString().contains("an e1000 keeps the saved MAC").contains("virtio-net or e1000e");
        assertThat(Clones.notes(saved(List.of("-netdev", "user,id=a", "-device", "e1000,netdev=a")))).last().asString()
                .contains("an e1000 keeps the saved MAC even when the guest resets it").doesNotContain("takes over");
    }

    @Test
    void manyClonesGetDistinctMacs() {
        java.util.Set<String> macs = new java.util.HashSet<>();
        for (int clone = 1; clone <= Clones.MAX_COUNT; clone++) {
            for (int nic = 0; nic < 4; nic++) macs.add(RestoreIdentity.mac(IMAGE, clone, nic));
        }
        assertThat(macs).hasSize(Clones.MAX_COUNT * 4);
    }

    @Test
    void refusesBadClonesAndNames() {
        assertThatThrownBy(() -> new RestoreIdentity(GUID, 3, 2, IMAGE)).hasMessage("clone: expected 1 <= clone <= count, actual clone 3 of 2");
        assertThatThrownBy(() -> new RestoreIdentity(GUID, 0, 1, IMAGE)).hasMessageContaining("actual clone 0 of 1");
        assertThat(Clones.names("web", 3)).containsExactly("web-1", "web-2", "web-3");
        assertThatThrownBy(() -> Clones.names("web", 0)).hasMessage("--clones: expected 1 to 64, actual 0");
        assertThatThrownBy(() -> Clones.names("web", 65)).hasMessage("--clones: expected 1 to 64, actual 65");
        assertThatThrownBy(() -> Clones.names("x".repeat(62), 10))
                .hasMessageContaining("expected names NAME-1..NAME-10 of 1-64 of [A-Za-z0-9._-], actual '" + "x".repeat(62) + "-10'");
        assertThatThrownBy(() -> Clones.names("a b", 2)).hasMessageContaining("actual 'a b-2'");
    }

    @Test
    void clonesWhoseVcpusFillTheHostStreamTheirBackgroundAtNormalPriority() {
        assertThat(Clones.backgroundPriority(1, 1, 2)).isEqualTo(dev.thaw.util.ThreadPriority.Policy.IDLE);
        assertThat(Clones.backgroundPriority(1, 2, 2)).as("one restore of a guest with a vCPU for every host CPU").isEqualTo(dev.thaw.util.ThreadPriority.Policy.NORMAL);
        assertThat(Clones.backgroundPriority(2, 1, 2)).isEqualTo(dev.thaw.util.ThreadPriority.Policy.NORMAL);
        assertThat(Clones.backgroundPriority(2, 2, 8)).isEqualTo(dev.thaw.util.ThreadPriority.Policy.IDLE);
        assertThat(Clones.backgroundPriority(4, 2, 8)).isEqualTo(dev.thaw.util.ThreadPriority.Policy.NORMAL);
    }

    @Test
    void aClusterMemberIsMovedOntoItsNewSwitchAndOnlyThere() {
        VmConfig member = saved(List.of("-netdev", "stream,id=net0,server=off,addr.type=unix,addr.path=/tmp/thaw-cluster-old/m2.sock",
                "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:03:02"));
        RestoreIdentity identity = RestoreIdentity.single().withClusterDirectory(Path.of("/tmp/thaw-cluster-new"));
        VmConfig moved = identity.applyTo(member).requireClusterSocketsIn(identity.clusterDirectories());
        assertThat(moved.extraArgs()).containsExactly("-netdev", "stream,id=net0,server=off,addr.type=unix,addr.path=/tmp/thaw-cluster-new/m2.sock",
                "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:03:02");
        assertThatThrownBy(() -> RestoreIdentity.single().applyTo(member).requireClusterSocketsIn(RestoreIdentity.single().clusterDirectories()))
                .hasMessageContaining("actual /tmp/thaw-cluster-old/m2.sock");
    }

    @Test
    void aRewrittenOptionIsCheckedAgain() {
        assertThatThrownBy(() -> dev.thaw.qemu.QemuOption.parse(List.of("-device", "vmgenid")).getFirst().with("guid", "../../etc"))
                .hasMessageContaining("expected guid to match").hasMessageContaining("actual '../../etc'");
    }
}
