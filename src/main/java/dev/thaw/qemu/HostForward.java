package dev.thaw.qemu;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The host ports a QEMU's user networking forwards to its guest, as QEMU bound them: read from HMP's {@code info usernet}
 * (libslirp's connection table), whose {@code HOST_FORWARD} rows give the bound host address and port beside the guest's.
 * Unlike the listening ports of the process ({@code util.ListeningPorts}) this says which host port leads to which guest
 * port when the kernel chose them ({@code hostfwd=tcp:127.0.0.1:0-:22}). Parsing is pure.
 *
 * @param protocol   tcp or udp
 * @param hostPort   the port on the host, as bound
 * @param guestPort  the guest's port it leads to
 */
public record HostForward(String protocol, String hostAddress, int hostPort, String guestAddress, int guestPort) {
    // "  TCP[HOST_FORWARD]   9       127.0.0.1 44177       10.0.2.15  5000     0     0"
    private static final Pattern ROW = Pattern.compile(
            "\\s*(TCP|UDP)\\[HOST_FORWARD]\\s+-?\\d+\\s+(\\S+)\\s+(\\d{1,5})\\s+(\\S+)\\s+(\\d{1,5})\\s+\\d+\\s+\\d+\\s*");

    /** Every forward in {@code info usernet}'s output, in its order; rows of other kinds (connections) are skipped. */
    public static List<HostForward> parse(String infoUsernet) {
        List<HostForward> forwards = new ArrayList<>();
        for (String line : infoUsernet.split("\\r?\\n")) {
            if (!line.contains("[HOST_FORWARD]")) continue;
            Matcher m = ROW.matcher(line);
            if (!m.matches()) {
                throw new IllegalArgumentException("info usernet: expected 'TCP|UDP[HOST_FORWARD] FD SRC-ADDR PORT DEST-ADDR PORT RECVQ SENDQ',"
                        + " actual '" + line.strip() + "'");
            }
            forwards.add(new HostForward(m.group(1).toLowerCase(Locale.ROOT), m.group(2), Integer.parseInt(m.group(3)), m.group(4),
                    Integer.parseInt(m.group(5))));
        }
        return List.copyOf(forwards);
    }

    /** The forwards of a running QEMU (none without user networking). */
    public static List<HostForward> of(QmpClient qmp) {
        return parse(qmp.humanMonitorCommand("info usernet"));
    }

    @Override
    public String toString() {
        return protocol + ":" + hostAddress + ":" + hostPort + " -> " + guestAddress + ":" + guestPort;
    }
}
