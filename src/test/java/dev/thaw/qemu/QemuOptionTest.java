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
    void refusesOptionsOffTheListNamingThem() {
        assertRefused(List.of("-D", "/etc/passwd"), "argument 1 (-D): expected one of [-device, -netdev]", "actual '-D'");
        assertRefused(List.of("-drive", "file=/dev/sda,format=raw"), "expected one of [-device, -netdev]", "actual '-drive'");
        assertRefused(List.of("--drive", "file=/dev/sda"), "actual '--drive'");
        assertRefused(List.of("-device", "virtio-balloon-pci", "-chardev", "file,id=c,path=/etc/cron.d/x"),
                "argument 3 (-chardev)", "actual '-chardev'");
        assertRefused(List.of("-device"), "expected a value after it");
    }

    @Test
    void refusesTypesAndPropertiesOffTheList() {
        assertRefused(List.of("-netdev", "tap,id=n0,script=/tmp/evil.sh"), "expected one of [user] as its type", "actual 'tap'");
        assertRefused(List.of("-netdev", "user,id=n0,guestfwd=tcp:10.0.2.100:1-cmd:/bin/sh"),
                "(-netdev user): expected key=value with a key among [hostfwd, id]", "actual 'guestfwd=tcp:10.0.2.100:1-cmd:/bin/sh'");
        assertRefused(List.of("-netdev", "user,id=n0,smb=/"), "actual 'smb=/'");
        assertRefused(List.of("-device", "virtio-blk-pci,drive=d0"), "expected one of [virtio-balloon-pci, virtio-net-pci] as its type");
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
    void aManifestsConfigurationIsCheckedWhenRead() throws IOException {
        String json = JSON.writeValueAsString(config(List.of())).replace("\"extraArgs\":[]", "\"extraArgs\":[\"-D\",\"/etc/passwd\"]");
        assertThat(json).contains("/etc/passwd");
        assertThatThrownBy(() -> JSON.readValue(json, VmConfig.class)).hasMessageContaining("expected one of [-device, -netdev]")
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
