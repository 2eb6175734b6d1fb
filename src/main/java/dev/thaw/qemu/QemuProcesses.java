package dev.thaw.qemu;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Finds the QEMU process behind a QMP socket, from /proc: QMP does not tell a client the pid. The socket's owner is the
 * {@code qemu-system-*} process holding a listening unix socket bound to that path (resolved against its working directory,
 * since QEMU binds a relative path as given), which finds chardevs added at run time too.
 */
public final class QemuProcesses {
    private static final Path PROC = Path.of("/proc");

    /** A running QEMU: its pid, its command line (as in /proc/PID/cmdline) and its working directory. */
    public record Found(long pid, List<String> argv, Path cwd) {}

    private QemuProcesses() {}

    /** The QEMU serving {@code socket}; throws naming the socket and how many QEMUs were looked at when there is none. */
    public static Found serving(Path socket) {
        Path wanted = socket.toAbsolutePath().normalize();
        Map<Long, String> unixPaths = unixSocketPaths();
        List<Found> owners = new ArrayList<>();
        int looked = 0;
        try (DirectoryStream<Path> pids = Files.newDirectoryStream(PROC, p -> p.getFileName().toString().chars().allMatch(Character::isDigit))) {
            for (Path dir : pids) {
                List<String> argv = commandLine(dir);
                if (argv.isEmpty() || !Path.of(argv.getFirst()).getFileName().toString().startsWith("qemu-system-")) continue;
                looked++;
                Path cwd;
                try {
                    cwd = Files.readSymbolicLink(dir.resolve("cwd"));
                } catch (IOException e) {
                    continue; // gone, or not ours to read
                }
                for (long inode : socketInodes(dir)) {
                    String bound = unixPaths.get(inode);
                    if (bound != null && cwd.resolve(bound).normalize().equals(wanted)) {
                        owners.add(new Found(Long.parseLong(dir.getFileName().toString()), argv, cwd));
                        break;
                    }
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot list " + PROC + ": " + e.getMessage(), e);
        }
        if (owners.size() != 1) {
            throw new IllegalArgumentException("the QEMU behind " + wanted + ": expected one qemu-system process listening on it, actual "
                    + (owners.isEmpty() ? "none among the " + looked + " QEMU processes readable here" : owners.size() + ": pids "
                    + owners.stream().map(Found::pid).toList()));
        }
        return owners.getFirst();
    }

    private static List<String> commandLine(Path procDir) {
        try {
            byte[] raw = Files.readAllBytes(procDir.resolve("cmdline"));
            if (raw.length == 0) return List.of();
            String text = new String(raw, StandardCharsets.UTF_8);
            if (text.endsWith("\0")) text = text.substring(0, text.length() - 1);
            return Arrays.asList(text.split("\0", -1));
        } catch (IOException e) {
            return List.of(); // the process ended meanwhile
        }
    }

    private static Set<Long> socketInodes(Path procDir) {
        Set<Long> inodes = new HashSet<>();
        try (DirectoryStream<Path> fds = Files.newDirectoryStream(procDir.resolve("fd"))) {
            for (Path fd : fds) {
                try {
                    String target = Files.readSymbolicLink(fd).toString();
                    if (target.startsWith("socket:[")) inodes.add(Long.parseLong(target.substring(8, target.length() - 1)));
                } catch (IOException e) {
                    // closed meanwhile
                }
            }
        } catch (IOException e) {
            // not ours to read
        }
        return inodes;
    }

    /** inode -> bound path of every listening unix socket with a path ({@code /proc/net/unix}, state 01 = listening). */
    private static Map<Long, String> unixSocketPaths() {
        Map<Long, String> paths = new HashMap<>();
        try {
            for (String line : Files.readAllLines(PROC.resolve("net/unix"))) {
                String[] f = line.trim().split("\\s+", 8);
                if (f.length == 8 && f[5].equals("01") && f[6].chars().allMatch(Character::isDigit) && !f[7].startsWith("@")) {
                    paths.put(Long.parseLong(f[6]), f[7]);
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot read /proc/net/unix: " + e.getMessage(), e);
        }
        return paths;
    }
}
