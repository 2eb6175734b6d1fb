package dev.thaw.util;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;

/**
 * The TCP ports a process listens on, from {@code /proc}: its socket inodes ({@code /proc/PID/fd})
 * matched against the listening sockets of {@code /proc/net/tcp} and {@code tcp6}. Used to find the
 * port a QEMU's user networking forwards to its guest when the host chose it ({@code hostfwd} port
 * 0), without asking that QEMU's monitor, which a restore in progress owns.
 */
public final class ListeningPorts {
    private static final String LISTEN = "0A";

    private ListeningPorts() {}

    public static Set<Integer> of(long pid) {
        Set<String> inodes = new HashSet<>();
        try (DirectoryStream<Path> fds = Files.newDirectoryStream(Path.of("/proc/" + pid + "/fd"))) {
            for (Path fd : fds) {
                try {
                    String target = Files.readSymbolicLink(fd).toString();
                    if (target.startsWith("socket:[")) inodes.add(target.substring(8, target.length() - 1));
                } catch (IOException e) {
                    // closed meanwhile
                }
            }
        } catch (IOException e) {
            return Set.of(); // the process is gone
        }
        Set<Integer> ports = new HashSet<>();
        for (String table : new String[] {"/proc/net/tcp", "/proc/net/tcp6"}) {
            try {
                for (String line : Files.readAllLines(Path.of(table))) {
                    String[] f = line.trim().split("\\s+");
                    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
                    if (f.length < 10 || !f[3].equals(LISTEN) || !inodes.contains(f[9])) continue;
                    ports.add(Integer.parseInt(f[1].substring(f[1].indexOf(':') + 1), 16));
                }
            } catch (IOException | RuntimeException e) {
                // no IPv6 table, or one line of an unexpected shape
            }
        }
        return ports;
    }
}
