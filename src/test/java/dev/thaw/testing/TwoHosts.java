package dev.thaw.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * Two "hosts" on this machine: two network namespaces ({@code thaw-a-X}, {@code thaw-b-X}) joined by a veth pair, A at
 * {@link #A_ADDRESS} and B at {@link #B_ADDRESS} (/24, MTU 9000, so that a tunnel's datagram of a 1514-byte frame is not
 * fragmented). Processes run in one with {@link #in}. {@link #close()} deletes both namespaces (the veth goes with them), also
 * after a failure; it needs root and iproute2.
 */
public final class TwoHosts implements AutoCloseable {
    public static final String A_ADDRESS = "10.250.0.1";
    public static final String B_ADDRESS = "10.250.0.2";

    public final String a;
    public final String b;
    private final List<String> created = new ArrayList<>();

    private TwoHosts(String suffix) {
        this.a = "thaw-a-" + suffix;
        this.b = "thaw-b-" + suffix;
    }

    public static TwoHosts create() throws IOException, InterruptedException {
        String suffix = Integer.toHexString(ThreadLocalRandom.current().nextInt(0x100000, 0xffffff));
        TwoHosts h = new TwoHosts(suffix);
        try {
            for (String ns : List.of(h.a, h.b)) {
                ip("netns", "add", ns);
                h.created.add(ns);
                ip("-n", ns, "link", "set", "lo", "up");
            }
            String va = "tva-" + suffix;
            String vb = "tvb-" + suffix;
            ip("link", "add", va, "netns", h.a, "type", "veth", "peer", "name", vb, "netns", h.b);
            for (String[] end : new String[][] {{h.a, va, A_ADDRESS}, {h.b, vb, B_ADDRESS}}) {
                ip("-n", end[0], "link", "set", end[1], "mtu", "9000");
                ip("-n", end[0], "addr", "add", end[2] + "/24", "dev", end[1]);
                ip("-n", end[0], "link", "set", end[1], "up");
            }
        } catch (IOException | InterruptedException | RuntimeException e) {
            h.close();
            throw e;
        }
        return h;
    }

    /** The prefix that runs a command in namespace {@code ns} ({@code ip netns exec} execs it: the pid is the command's). */
    public static List<String> in(String ns) {
        return List.of("ip", "netns", "exec", ns);
    }

    /** Whether namespace {@code ns} exists. */
    public static boolean exists(String ns) throws IOException, InterruptedException {
        return run(List.of("ip", "netns", "list")).lines().anyMatch(l -> l.split(" ")[0].equals(ns));
    }

    private static void ip(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("ip"));
        cmd.addAll(List.of(args));
        run(cmd);
    }

    private static String run(List<String> cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        if (!p.waitFor(10, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException(String.join(" ", cmd) + ": expected it to end within 10 s, actual still running");
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.exitValue() != 0) throw new IOException(String.join(" ", cmd) + ": expected status 0, actual " + p.exitValue() + ": " + out.strip());
        return out;
    }

    @Override
    public void close() {
        for (String ns : created) {
            try {
                ip("netns", "del", ns);
            } catch (IOException | InterruptedException e) {
                System.err.println("TwoHosts: " + e.getMessage());
            }
        }
    }
}
