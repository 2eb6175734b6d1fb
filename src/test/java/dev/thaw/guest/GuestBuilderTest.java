package dev.thaw.guest;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.testing.TestHost;
import java.io.IOException;
import java.io.PrintStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GuestBuilderTest {
    @Test
    void buildIsReproducibleAndCachedByKey(@TempDir Path cache) throws IOException, NoSuchAlgorithmException {
        GuestImage shared = TestHost.guest();
        PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());
        GuestImage fresh = GuestBuilder.build(cache, quiet);
        assertThat(fresh.key()).isEqualTo(shared.key());
        assertThat(fresh.directory()).isEqualTo(cache.resolve("guest").resolve(shared.key()));
        assertThat(sha256(fresh.initrd())).as("initramfs built twice").isEqualTo(sha256(shared.initrd()));
        assertThat(sha256(fresh.kernel())).isEqualTo(sha256(shared.kernel()));
        assertThat(GuestBuilder.build(cache, quiet)).as("second build is a cache hit").isEqualTo(fresh);
        try (var entries = Files.list(cache.resolve("guest"))) {
            assertThat(entries.map(p -> p.getFileName().toString())).containsExactly(shared.key()); // no temp dirs left
        }
    }

    @Test
    void keyCoversEveryInput(@TempDir Path copy) throws Exception {
        Path guestDir = dev.thaw.util.ThawPaths.home().resolve("guest");
        String original = key(guestDir);
        assertThat(original).isEqualTo(TestHost.guest().key());
        for (String input : new String[] {"src/memsum.c", "src/wsbench.c", "init", "modules.list", "build.sh"}) {
            Path dir = copy.resolve(input.replace('/', '_'));
            copyTree(guestDir, dir);
            Files.writeString(dir.resolve(input), "\n", java.nio.file.StandardOpenOption.APPEND);
            assertThat(key(dir)).as("key after changing " + input).isNotEqualTo(original);
        }
    }

    @Test
    void thePostgresDiskIsCachedByAKeyOfItsScriptAndPackages(@TempDir Path copy) throws Exception {
        PostgresDisk disk = TestHost.postgresDisk();
        Path script = dev.thaw.util.ThawPaths.home().resolve("guest/build-postgres.sh");
        assertThat(disk.key()).isEqualTo(printKey(script)).matches("[0-9a-f]{16}");
        assertThat(disk.packages()).contains("postgresql-15=15.").contains("libc6=");
        assertThat(GuestBuilder.buildPostgresDisk(new PrintStream(OutputStream.nullOutputStream()))).as("a cache hit").isEqualTo(disk);
        // QEMU's own view: a qcow2 of the disk's virtual size, its root file system in it.
        String info = dev.thaw.util.ExternalCommand.check(java.util.List.of("qemu-img", "info", "--output=json", disk.qcow2().toString()),
                java.time.Duration.ofSeconds(30));
        assertThat(info).contains("\"format\": \"qcow2\"").contains("\"virtual-size\": " + (1024L << 20));
        Path changed = copy.resolve("build-postgres.sh");
        Files.writeString(changed, Files.readString(script) + "\n");
        assertThat(printKey(changed)).as("key after changing the script").isNotEqualTo(disk.key());
    }

    private static String printKey(Path script) {
        return dev.thaw.util.ExternalCommand.check(java.util.List.of("bash", script.toString(), "--print-key"),
                java.time.Duration.ofMinutes(2)).strip();
    }

    private static String key(Path guestDir) {
        return dev.thaw.util.ExternalCommand.check(java.util.List.of("bash", guestDir.resolve("build.sh").toString(), "--print-key"),
                java.time.Duration.ofMinutes(2)).strip();
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (var walk = Files.walk(from)) {
            for (Path p : walk.toList()) {
                Path t = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) Files.createDirectories(t);
                else Files.copy(p, t);
            }
        }
    }

    private static String sha256(Path file) throws IOException, NoSuchAlgorithmException {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
    }
}
