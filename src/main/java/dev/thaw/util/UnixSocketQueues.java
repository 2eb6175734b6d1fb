package dev.thaw.util;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * What waits in connected unix stream sockets, as iproute2's {@code ss -x} reports it from the kernel's sock_diag. A switch that
 * accepted connections on a bound path finds its own ends by that path (an accepted socket carries the listening socket's
 * address) and each one's peer by the peer's inode; the peer's Recv-Q is the bytes written to it that it has not read
 * ({@code unix_inq_len}: payload bytes; the writer's Send-Q counts buffer memory instead, larger).
 */
public final class UnixSocketQueues {
    private static final Duration TIMEOUT = Duration.ofSeconds(5);

    private UnixSocketQueues() {}

    /**
     * The bytes each of {@code sockets} wrote and its peer has not read, summed over its connected sockets (0 for one with
     * none); empty when {@code ss} cannot be run or says nothing usable.
     */
    public static Optional<Map<Path, Long>> unreadByPeers(Collection<Path> sockets) {
        ExternalCommand.Result r = ExternalCommand.run(List.of("ss", "-x", "-H", "-a"), TIMEOUT);
        if (!r.succeeded()) return Optional.empty();
        return Optional.of(unreadByPeers(r.stdout(), sockets));
    }

    /**
     * The same from {@code ss -x -H -a}'s output (pure): lines {@code u_str STATE RECVQ SENDQ LOCAL INODE PEER PEER-INODE}; for each
     * ESTAB socket bound to one of {@code sockets}, the Recv-Q of the socket whose inode is its peer's.
     */
    public static Map<Path, Long> unreadByPeers(String ssOutput, Collection<Path> sockets) {
        Map<String, Path> wanted = new HashMap<>();
        Map<Path, Long> out = new HashMap<>();
        for (Path s : sockets) {
            wanted.put(s.toString(), s);
            out.put(s, 0L);
        }
        Map<String, Long> receiveQueueByInode = new HashMap<>();
        Map<Path, List<String>> peers = new HashMap<>();
        for (String line : ssOutput.split("\n")) {
            String[] f = line.trim().split("\\s+");
            if (f.length < 8 || !f[0].equals("u_str") || !f[1].equals("ESTAB")) continue;
            receiveQueueByInode.put(f[5], count(f[2], "Recv-Q", line));
            Path socket = wanted.get(f[4]);
            if (socket != null) peers.computeIfAbsent(socket, k -> new java.util.ArrayList<>()).add(f[7]);
        }
        peers.forEach((socket, inodes) -> {
            for (String inode : inodes) out.merge(socket, receiveQueueByInode.getOrDefault(inode, 0L), Long::sum);
        });
        return out;
    }

    private static long count(String field, String column, String line) {
        try {
            return Long.parseLong(field);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("ss -x: expected a " + column + " count, actual '" + field + "' in: " + line, e);
        }
    }
}
