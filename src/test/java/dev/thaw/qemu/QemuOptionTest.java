package dev.thaw.qemu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The allowlist of options a recorded configuration (an image's manifest, a vm.json) may give QEMU. */
class QemuOptionTest {
    private static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules();

    private static VmConfig config(List<String> extraArgs) {
        return new VmConfig("vm1", "pc-i440fx-7.2", Accel.TCG, 512, 1, Path.of("/k"), Path.of("/i"), "console=ttyS0", false, false,
                extraArgs);
    }

    @Test
    void thawsOwnDevicesAreReplayedUnchanged() {
        List<String> redis = List.of("-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:0-:6379",
                "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56", "-device", "virtio-balloon-pci");
        assertThat(config(redis).extraArgs()).isEqualTo(redis);
        assertThat(QemuOption.parse(redis).getFirst()).isEqualTo(new QemuOption("-netdev", "user",
                List.of(new QemuOption.Property("id", "net0"), new QemuOption.Property("hostfwd", "tcp:127.0.0.1:0-:6379"))));
    }

    @Test
    void theVmGenerationIdDeviceIsAdmittedWithAGuidOrAuto() {
        for (String device : List.of("vmgenid", "vmgenid,id=g0,guid=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "vmgenid,guid=auto")) {
            List<String> gen = List.of("-device", device);
            assertThat(config(gen).extraArgs()).isEqualTo(gen);
        }
        assertRefused(List.of("-device", "vmgenid", "-device", "vmgenid,guid=auto"), "expected at most one vmgenid device",
                "actual 'vmgenid,guid=auto'");
        assertRefused(List.of("-device", "vmgenid,guid=not-a-guid"), "(-device vmgenid): expected guid to match", "actual 'not-a-guid'");
        assertRefused(List.of("-device", "vmgenid,addr=05"), "expected key=value with a key among [guid, id]", "actual 'addr=05'");
    }

    @Test
    void refusesOptionsOffTheListNamingThem() {
        assertRefused(List.of("-D", "/etc/passwd"), "argument 1 (-D): expected one of [-boot, -device, -netdev, -nic, -object]", "actual '-D'");
        assertRefused(List.of("-drive", "file=/dev/sda,format=raw"), "expected one of [-boot, -device, -netdev, -nic, -object]", "actual '-drive'");
        assertRefused(List.of("--drive", "file=/dev/sda"), "actual '--drive'");
        assertRefused(List.of("-device", "virtio-balloon-pci", "-chardev", "file,id=c,path=/etc/cron.d/x"),
                "argument 3 (-chardev)", "actual '-chardev'");
        assertRefused(List.of("-device"), "expected a value after it");
    }

    @Test
    void refusesTypesAndPropertiesOffTheList() {
        assertRefused(List.of("-netdev", "tap,id=n0,script=/tmp/evil.sh"), "expected one of [stream, user] as its type", "actual 'tap'");
        assertRefused(List.of("-netdev", "user,id=n0,guestfwd=tcp:10.0.2.100:1-cmd:/bin/sh"),
                "(-netdev user): expected key=value with a key among [hostfwd, id]", "actual 'guestfwd=tcp:10.0.2.100:1-cmd:/bin/sh'");
        assertRefused(List.of("-netdev", "user,id=n0,smb=/"), "actual 'smb=/'");
        assertRefused(List.of("-device", "virtio-blk-pci,drive=d0"), "expected one of [e1000, e1000e, virtio-balloon-pci, virtio-net-pci, vmgenid] as its type");
        assertRefused(List.of("-device", "virtio-net-pci,netdev=n0,romfile=/etc/shadow"), "actual 'romfile=/etc/shadow'");
        assertRefused(List.of("-device", "{\"driver\":\"virtio-net-pci\",\"romfile\":\"/etc/shadow\"}"), "as its type");
        assertRefused(List.of("-device", "virtio-balloon-pci,id"), "expected key=value", "actual 'id'");
    }

    @Test
    void refusesValuesThatWouldReachFurther() {
        // ",," is a comma inside a value to QEMU: the MAC would swallow a romfile= it then reads as a property.
        assertRefused(List.of("-device", "virtio-net-pci,mac=52:54:00:12:34:56,,romfile=/etc/shadow"), "actual ''");
        // An empty host address listens on every interface.
        assertRefused(List.of("-netdev", "user,id=n0,hostfwd=tcp::2222-:22"), "expected hostfwd to match", "actual 'tcp::2222-:22'");
        assertRefused(List.of("-netdev", "user,id=n0,id=n1"), "expected id at most once");
        assertRefused(List.of("-device", "virtio-net-pci,mac=../../x"), "expected mac to match");
        assertThat(QemuOption.parse(List.of("-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:0-:22,hostfwd=udp:127.0.0.1:5353-10.0.2.15:53")))
                .hasSize(1);
    }

    @Test
    void aClusterMembersStreamNetdevIsAdmittedInOneFormOnly() {
        List<String> member = List.of("-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/thaw-cluster-1/m1.sock",
                "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:00:03:01");
        assertThat(config(member).extraArgs()).isEqualTo(member);
        assertThat(QemuOption.parse(member).getFirst().clusterSocket()).contains(Path.of("/tmp/thaw-cluster-1/m1.sock"));
        assertThat(QemuOption.parse(member).getLast().clusterSocket()).isEmpty();
        String stream = "stream,id=n0,server=off,addr.type=unix,addr.path=";
        // Listening would create a socket file wherever the path says; inet would reach the network.
        assertRefused(List.of("-netdev", "stream,id=n0,server=on,addr.type=unix,addr.path=/tmp/c/m1.sock"),
                "expected server to match off", "actual 'on'");
        assertRefused(List.of("-netdev", "stream,id=n0,server=off,addr.type=inet,addr.host=10.0.0.1,addr.port=7"),
                "expected addr.type to match unix", "actual 'inet'");
        assertRefused(List.of("-netdev", "stream,id=n0,addr.type=unix,addr.path=/tmp/c/m1.sock"), "expected the properties [server]",
                "actual 'none of them'");
        assertRefused(List.of("-netdev", "stream,id=n0,server=off,addr.type=unix"), "expected the properties [addr.path]");
        assertRefused(List.of("-netdev", stream + "/tmp/c/m1.sock,reconnect=1"), "expected key=value with a key among", "actual 'reconnect=1'");
        assertRefused(List.of("-netdev", stream + "/tmp/c/m1.sock,addr.path=/tmp/c/m2.sock"), "expected addr.path at most once");
        // Only a switch port's socket: not a service's socket, not a path that climbs out, not a relative one.
        assertRefused(List.of("-netdev", stream + "/run/docker.sock/"), "expected addr.path to match");
        assertRefused(List.of("-netdev", stream + "/var/run/docker"), "actual '/var/run/docker'");
        assertRefused(List.of("-netdev", stream + "/tmp/c/../../run/m1.sock"), "actual '/tmp/c/../../run/m1.sock'");
        assertRefused(List.of("-netdev", stream + "/tmp/./m1.sock"), "expected addr.path to match");
        assertRefused(List.of("-netdev", stream + "c/m1.sock"), "expected addr.path to match");
        assertRefused(List.of("-netdev", stream + "/tmp/" + "d".repeat(100) + "/m1.sock"), "expected addr.path to match");
        assertRefused(List.of("-netdev", stream + "/tmp/c/m 1.sock"), "expected addr.path to match");
    }

    @Test
    void aStreamNetdevsSocketMustLieInTheClustersDirectory() {
        VmConfig member = config(List.of("-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/thaw-cluster-1/m1.sock"));
        assertThat(member.requireClusterSocketsIn(List.of(Path.of("/tmp/thaw-cluster-1")))).isSameAs(member);
        assertThat(member.requireClusterSocketsIn(List.of(Path.of("/tmp/thaw-cluster-1/../thaw-cluster-1")))).isSameAs(member);
        assertThatThrownBy(() -> member.requireClusterSocketsIn(List.of(Path.of("/tmp"))))
                .hasMessageContaining("expected a socket directly inside one of [/tmp] (the cluster's directory)")
                .hasMessageContaining("actual /tmp/thaw-cluster-1/m1.sock");
        // A restore trusts no cluster directory yet: a member's image is refused, not connected to whatever listens there.
        assertThatThrownBy(() -> member.requireClusterSocketsIn(List.of())).hasMessageContaining("one of []");
        assertThat(config(List.of("-device", "virtio-balloon-pci")).requireClusterSocketsIn(List.of())).isNotNull();
    }

    @Test
    void aManifestsConfigurationIsCheckedWhenRead() throws IOException {
        String json = JSON.writeValueAsString(config(List.of())).replace("\"extraArgs\":[]", "\"extraArgs\":[\"-D\",\"/etc/passwd\"]");
        assertThat(json).contains("/etc/passwd");
        assertThatThrownBy(() -> JSON.readValue(json, VmConfig.class)).hasMessageContaining("expected one of [-boot, -device, -netdev, -nic, -object]")
                .hasMessageContaining("actual '-D'");
        String machine = JSON.writeValueAsString(config(List.of())).replace("pc-i440fx-7.2", "pc-i440fx-7.2,dump-guest-core=on");
        assertThatThrownBy(() -> JSON.readValue(machine, VmConfig.class)).hasMessageContaining("expected a versioned type");
    }

    @Test
    void guestFilesMustLieInATrustedDirectory(@TempDir Path dir) throws IOException {
        Path trusted = Files.createDirectories(dir.resolve("guest"));
        Path kernel = Files.writeString(trusted.resolve("vmlinuz"), "k");
        Path initrd = Files.writeString(trusted.resolve("initrd.img"), "i");
        Path secret = Files.writeString(dir.resolve("id_rsa"), "secret");
        Path link = Files.createSymbolicLink(trusted.resolve("link"), secret);
        assertThat(withFiles(kernel, initrd).requireGuestFilesIn(List.of(trusted)).kernel()).isEqualTo(kernel);
        assertThatThrownBy(() -> withFiles(secret, initrd).requireGuestFilesIn(List.of(trusted)))
                .hasMessageContaining("guest kernel: expected a regular file inside one of [" + trusted + "]")
                .hasMessageContaining("actual " + secret.toRealPath());
        assertThatThrownBy(() -> withFiles(kernel, link).requireGuestFilesIn(List.of(trusted))).hasMessageContaining("guest initrd")
                .hasMessageContaining("actual " + secret.toRealPath());
        assertThatThrownBy(() -> withFiles(trusted.resolve("../id_rsa"), initrd).requireGuestFilesIn(List.of(trusted)))
                .hasMessageContaining("actual " + secret.toRealPath());
        assertThatThrownBy(() -> withFiles(trusted.resolve("none"), initrd).requireGuestFilesIn(List.of(trusted)))
                .hasMessageContaining("expected a readable file");
    }

    private static VmConfig withFiles(Path kernel, Path initrd) {
        return new VmConfig("vm1", "pc-i440fx-7.2", Accel.TCG, 512, 1, kernel, initrd, "", false, false, List.of());
    }

    private static void assertRefused(List<String> args, String... parts) {
        var refused = assertThatThrownBy(() -> QemuOption.parse(args)).isInstanceOf(QemuOption.RefusedException.class);
        for (String part : parts) refused.hasMessageContaining(part);
        assertThatThrownBy(() -> config(args)).isInstanceOf(QemuOption.RefusedException.class);
    }
}
