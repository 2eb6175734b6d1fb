package dev.thaw.testing;

import java.nio.file.Files;
import java.nio.file.Path;

/** A digest of a directory tree, to show that an operation left it unchanged. */
public final class TreeDigest {
    private TreeDigest() {}

    /** SHA-256 over every file's path, size and bytes, plus modification times. */
    public static String of(Path root) throws Exception {
        java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
        try (var walk = Files.walk(root)) {
            for (Path p : walk.filter(Files::isRegularFile).sorted().toList()) {
                md.update(root.relativize(p).toString().getBytes());
                md.update(Files.getLastModifiedTime(p).toString().getBytes());
                try (var in = Files.newInputStream(p)) {
                    byte[] buffer = new byte[1 << 20];
                    for (int n; (n = in.read(buffer)) > 0; ) md.update(buffer, 0, n);
                }
            }
        }
        return java.util.HexFormat.of().formatHex(md.digest());
    }
}
