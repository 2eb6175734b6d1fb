package dev.thaw.cluster.net;

import dev.thaw.util.OwnerOnly;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.time.Instant;
import java.time.InstantSource;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A virtual Ethernet switch for the members of a virtual cluster. Each member's QEMU connects to
 * the member's own unix socket with QEMU 7.2's stream netdev
 * ({@code -netdev stream,id=n0,server=off,addr.type=unix,addr.path=SOCKET}), so the switch knows
 * which member a connection is without trusting anything the guest sends.
 *
 * <p>Framing (QEMU 7.2, net/stream.c {@code net_stream_receive} and net/net.c
 * {@code net_fill_rstate}): every frame is preceded by its length as a 4-byte big-endian integer,
 * with no vnet header; QEMU takes frames of at most {@link #MAX_FRAME_BYTES} and ends its connection
 * on a longer length, and so does the switch.
 *
 * <p>Forwarding: the source MAC of every frame is learned for its member; a frame to a learned
 * unicast MAC goes to that member, broadcast, multicast and unknown unicast go to every other
 * member. Every (sender, receiver) pair's frames, bytes and last time are recorded. Frames for a
 * member wait in its bounded queue: while the member is held ({@link #hold}) they stay there (the
 * bound reached, further ones are dropped and counted) and {@link #release} delivers them in order.
 * {@link #cut()} holds every member for good: the queues are then the frames in flight of the
 * cluster's checkpoint.
 *
 * <p>One thread, {@code cluster-switch}, does all socket work with non-blocking channels, so a
 * member whose QEMU stops reading (a stopped guest's NIC takes nothing) fills its own queue and
 * never delays the others. Its selector wakes at least every 250 ms; {@link #close()} waits for it
 * at most 5 s.
 */
public final class ClusterSwitch implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ClusterSwitch.class);
    /** QEMU 7.2's NET_BUFSIZE (include/net/net.h): the longest frame its stream netdev reassembles. */
    public static final int MAX_FRAME_BYTES = 4096 + 65536;
    /** Destination MAC, source MAC, ethertype: anything shorter is not a frame to forward. */
    public static final int ETHERNET_HEADER_BYTES = 14;
    /** The longest unix socket path (sun_path is 108 bytes with its terminating NUL). */
    public static final int MAX_SOCKET_PATH_BYTES = 107;
    private static final Pattern MEMBER_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_-]{0,62}");
    private static final Duration SELECT_INTERVAL = Duration.ofMillis(250);
    private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(5);

    /** The bound of every member's queue: frames and bytes (whichever is reached first). */
    public record Options(int queueFrames, long queueBytes) {
        /** 4096 frames or 16 MiB: a second of a busy gigabit link, more than the few seconds of TCP a restore holds back. */
        public static final Options DEFAULT = new Options(4096, 16L << 20);

        public Options {
            if (queueFrames < 1 || queueBytes < MAX_FRAME_BYTES) {
                throw new IllegalArgumentException("switch options: expected queueFrames >= 1 and queueBytes >= " + MAX_FRAME_BYTES
                        + ", actual " + queueFrames + " frames, " + queueBytes + " bytes");
            }
        }
    }

    /** The switch at its cut: when, and the frames in flight then (every queue, in the order read). */
    public record Cut(Instant at, List<Frame> inFlight) {
        public Cut {
            inFlight = List.copyOf(inFlight);
        }
    }

    private final Object lock = new Object();
    private final Map<String, Port> ports = new LinkedHashMap<>();
    private final Map<Long, String> macTable = new HashMap<>();
    private final Map<String, Map<String, long[]>> traffic = new TreeMap<>(); // from -> to -> {frames, bytes, last epoch nanos}
    private final Selector selector;
    private final Options options;
    private final InstantSource clock;
    private final Thread thread;
    private long nextSequence;
    private boolean cut;
    private volatile boolean closed;
    private Throwable failure;

    private ClusterSwitch(Selector selector, Options options, InstantSource clock) {
        this.selector = selector;
        this.options = options;
        this.clock = clock;
        this.thread = Thread.ofPlatform().daemon().name("cluster-switch").unstarted(this::run);
    }

    /**
     * Opens one listening socket per member, {@code socketDir/MEMBER.sock} ({@code socketDir} is
     * created with mode 0700: whoever can connect can inject frames), and starts forwarding. A
     * stale socket file (a switch that was killed) is replaced; any other file there is an error.
     */
    public static ClusterSwitch open(Path socketDir, List<String> members, Options options, InstantSource clock) throws IOException {
        if (members.isEmpty()) throw new IllegalArgumentException("switch: expected at least one member, actual none");
        OwnerOnly.createDirectories(socketDir);
        ClusterSwitch sw = new ClusterSwitch(Selector.open(), options, clock);
        try {
            for (String m : members) {
                if (!MEMBER_NAME.matcher(m).matches()) {
                    throw new IllegalArgumentException("switch: expected a member name matching " + MEMBER_NAME + ", actual '" + m + "'");
                }
                if (sw.ports.containsKey(m)) throw new IllegalArgumentException("switch: expected distinct member names, actual " + m + " twice");
                Path socket = socketDir.resolve(m + ".sock").toAbsolutePath();
                int length = socket.toString().getBytes(StandardCharsets.UTF_8).length;
                if (length > MAX_SOCKET_PATH_BYTES) {
                    throw new IllegalArgumentException("switch: socket " + socket + ": expected a path of at most " + MAX_SOCKET_PATH_BYTES
                            + " bytes, actual " + length);
                }
                removeStaleSocket(socket);
                ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
                Port port = new Port(m, socket, server);
                sw.ports.put(m, port);
                server.bind(UnixDomainSocketAddress.of(socket));
                server.configureBlocking(false);
                server.register(sw.selector, SelectionKey.OP_ACCEPT, port);
            }
        } catch (IOException | RuntimeException e) {
            sw.closeChannels();
            throw e;
        }
        sw.thread.start();
        return sw;
    }

    public static ClusterSwitch open(Path socketDir, List<String> members) throws IOException {
        return open(socketDir, members, Options.DEFAULT, InstantSource.system());
    }

    /** The socket the member's QEMU connects to. */
    public Path socket(String member) {
        return port(member).socket;
    }

    /** The argument of QEMU 7.2's {@code -netdev} that connects a member to this switch. */
    public String netdev(String member, String id) {
        return "stream,id=" + id + ",server=off,addr.type=unix,addr.path=" + socket(member);
    }

    /** From now on, frames for {@code member} wait in its queue (up to its bound) until {@link #release}. */
    public void hold(String member) {
        synchronized (lock) {
            checkOpen();
            port(member).held = true;
        }
    }

    /** Delivers the frames held for {@code member}, in order, then forwards as before. Refused after a cut. */
    public void release(String member) {
        synchronized (lock) {
            checkOpen();
            Port p = port(member);
            if (cut) throw new IllegalStateException("switch: release of " + member + ": expected a switch that was not cut, actual cut");
            p.held = false;
        }
        selector.wakeup();
    }

    /**
     * Queues a checkpoint's frames for their receivers, in the order given, ahead of anything they are sent later: every
     * receiver must be held (a restore holds its members until they run, then {@link #release}s each). All or nothing: a frame
     * for a member not held, or more frames or bytes for one member than its queue's bound, fails before any is queued.
     */
    public void preload(List<Frame> frames) {
        synchronized (lock) {
            checkOpen();
            Map<String, long[]> per = new TreeMap<>();
            for (Frame f : frames) {
                Port p = port(f.to());
                port(f.from());
                if (!p.held) throw new IllegalStateException("switch: preload of a frame for " + f.to() + ": expected it held, actual not");
                long[] n = per.computeIfAbsent(f.to(), k -> new long[2]);
                n[0]++;
                n[1] += f.data().length;
            }
            per.forEach((member, n) -> {
                Port p = port(member);
                if (p.queue.size() + n[0] > options.queueFrames() || p.queuedBytes + n[1] > options.queueBytes()) {
                    throw new IllegalStateException("switch: preload for " + member + ": expected at most " + options.queueFrames()
                            + " frames and " + options.queueBytes() + " bytes (its queue's bound), actual " + (p.queue.size() + n[0]) + " frames, "
                            + (p.queuedBytes + n[1]) + " bytes");
                }
            });
            for (Frame f : frames) {
                Port p = port(f.to());
                p.queue.add(f);
                p.preloaded.add(f);
                p.queuedBytes += f.data().length;
                p.maxQueuedFrames = Math.max(p.maxQueuedFrames, p.queue.size());
                nextSequence = Math.max(nextSequence, f.sequence() + 1);
            }
        }
    }

    /**
     * Stops forwarding for good: every member is held, and the frames in every queue are the frames
     * in flight. Frames the members send afterwards (before they are stopped) are held too and
     * belong to the checkpoint as well: read them with {@link #held()} once every member stopped.
     */
    public Cut cut() {
        synchronized (lock) {
            checkOpen();
            cut = true;
            for (Port p : ports.values()) p.held = true;
            return new Cut(clock.instant(), heldLocked());
        }
    }

    /** Every frame waiting in a queue now, in the order the switch read them. */
    public List<Frame> held() {
        synchronized (lock) {
            return heldLocked();
        }
    }

    /** The traffic record: one entry per pair that exchanged a frame, by sender then receiver. */
    public List<PairRecord> traffic() {
        synchronized (lock) {
            List<PairRecord> out = new ArrayList<>();
            traffic.forEach((from, tos) -> new TreeMap<>(tos).forEach((to, s) ->
                    out.add(new PairRecord(from, to, s[0], s[1], Instant.EPOCH.plusNanos(s[2])))));
            return out;
        }
    }

    public List<PortStats> ports() {
        synchronized (lock) {
            return ports.values().stream().map(p -> p.stats(options)).toList();
        }
    }

    public PortStats stats(String member) {
        synchronized (lock) {
            return port(member).stats(options);
        }
    }

    /** The learned MAC addresses ({@code 52:54:00:12:34:56}) and their members. */
    public Map<String, String> macTable() {
        synchronized (lock) {
            Map<String, String> out = new TreeMap<>();
            macTable.forEach((mac, member) -> out.put(macString(mac), member));
            return out;
        }
    }

    /** Closes every socket, removes the socket files and ends the thread (waiting at most 5 s for it). */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        selector.wakeup();
        try {
            thread.join(CLOSE_TIMEOUT);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (thread.isAlive()) log.warn("cluster switch: its thread did not end within {}; closing its sockets under it", CLOSE_TIMEOUT);
        synchronized (lock) {
            closeChannels();
        }
    }

    private void closeChannels() {
        for (Port p : ports.values()) {
            p.disconnect();
            closeQuietly(p.server);
            try {
                Files.deleteIfExists(p.socket);
            } catch (IOException e) {
                log.warn("cluster switch: could not remove {}: {}", p.socket, e.toString());
            }
        }
        closeQuietly(selector);
    }

    private void run() {
        try {
            while (!closed) {
                selector.select(SELECT_INTERVAL.toMillis());
                synchronized (lock) {
                    for (SelectionKey key : selector.selectedKeys()) {
                        Port p = (Port) key.attachment();
                        if (!key.isValid()) continue;
                        if (key.isAcceptable()) accept(p);
                        else if (key.isReadable()) read(p);
                    }
                    selector.selectedKeys().clear();
                    for (Port p : ports.values()) flush(p);
                }
            }
        } catch (IOException | RuntimeException | Error e) {
            synchronized (lock) {
                failure = e;
                closeChannels();
            }
            log.error("cluster switch: failed; every member is disconnected", e);
        }
    }

    private void accept(Port p) throws IOException {
        SocketChannel c = p.server.accept();
        if (c == null) return;
        if (p.connection != null) {
            p.rejectedConnections++;
            log.warn("cluster switch: {} connected a second time; refused (its first connection stays)", p.member);
            closeQuietly(c);
            return;
        }
        c.configureBlocking(false);
        p.connection = c;
        p.key = c.register(selector, SelectionKey.OP_READ, p);
        p.connections++;
        log.debug("cluster switch: {} connected", p.member);
    }

    private void read(Port p) {
        int n;
        try {
            n = p.connection.read(p.in);
        } catch (IOException e) {
            log.info("cluster switch: {}'s connection failed: {}", p.member, e.toString());
            lose(p);
            return;
        }
        if (n < 0) {
            log.debug("cluster switch: {} disconnected", p.member);
            lose(p);
            return;
        }
        p.in.flip();
        while (p.in.remaining() >= 4) {
            int length = p.in.getInt(p.in.position());
            if (length < 0 || length > MAX_FRAME_BYTES) {
                p.protocolViolations++;
                log.warn("cluster switch: {} sent a frame length of {}: expected at most {} (QEMU's NET_BUFSIZE); connection ended",
                        p.member, Integer.toUnsignedLong(length), MAX_FRAME_BYTES);
                lose(p);
                return;
            }
            if (p.in.remaining() < 4 + length) break;
            p.in.getInt();
            byte[] data = new byte[length];
            p.in.get(data);
            forward(p, data);
        }
        p.in.compact();
    }

    private void forward(Port from, byte[] data) {
        from.framesIn++;
        from.bytesIn += data.length;
        if (data.length < ETHERNET_HEADER_BYTES) {
            from.malformedFrames++;
            return;
        }
        long sequence = nextSequence++;
        long destination = mac(data, 0);
        long source = mac(data, 6);
        if (!multicast(source)) macTable.put(source, from.member);
        String owner = multicast(destination) ? null : macTable.get(destination);
        if (from.member.equals(owner)) return; // for its own port: a switch does not send a frame back where it came from
        long now = nanos(clock.instant());
        for (Port to : ports.values()) {
            if (to == from || (owner != null && !owner.equals(to.member))) continue;
            long[] record = traffic.computeIfAbsent(from.member, k -> new TreeMap<>()).computeIfAbsent(to.member, k -> new long[3]);
            record[0]++;
            record[1] += data.length;
            record[2] = now;
            to.offer(new Frame(sequence, from.member, to.member, data), options);
        }
    }

    /** Writes queued frames to a connected member that is not held, until its socket takes no more. */
    private void flush(Port p) {
        if (p.connection == null) return;
        try {
            while (true) {
                if (p.out == null) {
                    if (p.held || p.queue.isEmpty()) break;
                    Frame f = p.queue.poll();
                    p.queuedBytes -= f.data().length;
                    p.out = ByteBuffer.allocate(4 + f.data().length).putInt(f.data().length).put(f.data()).flip();
                    p.outPreloaded = p.preloaded.remove(f);
                }
                p.connection.write(p.out);
                if (p.out.hasRemaining()) break;
                p.framesOut++;
                if (p.outPreloaded) p.preloadedFramesOut++;
                p.bytesOut += p.out.capacity() - 4;
                p.out = null;
            }
        } catch (IOException e) {
            log.info("cluster switch: writing to {} failed: {}", p.member, e.toString());
            lose(p);
            return;
        }
        // A frame begun is finished even if the member was held meanwhile: the stream has no other way back to a frame boundary.
        p.key.interestOps(SelectionKey.OP_READ | (p.out != null ? SelectionKey.OP_WRITE : 0));
    }

    /** The member's connection is gone: a frame half written is lost; what waits stays only if the member is held. */
    private void lose(Port p) {
        if (p.out != null) p.droppedUnconnected++;
        p.out = null;
        p.disconnect();
        if (!p.held) {
            p.droppedUnconnected += p.queue.size();
            p.queue.clear();
            p.queuedBytes = 0;
        }
    }

    private List<Frame> heldLocked() {
        List<Frame> all = new ArrayList<>();
        for (Port p : ports.values()) all.addAll(p.queue);
        all.sort(Comparator.comparingLong(Frame::sequence).thenComparing(Frame::to));
        return all;
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("switch: expected an open switch, actual closed");
        if (failure != null) throw new IllegalStateException("switch: expected a running switch, actual failed: " + failure, failure);
    }

    private Port port(String member) {
        Port p = ports.get(member);
        if (p == null) throw new IllegalArgumentException("switch: expected one of the members " + ports.keySet() + ", actual " + member);
        return p;
    }

    private static void removeStaleSocket(Path socket) throws IOException {
        if (!Files.exists(socket, LinkOption.NOFOLLOW_LINKS)) return;
        if (!Files.readAttributes(socket, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).isOther()) {
            throw new IllegalArgumentException("switch: " + socket + ": expected no file or a stale socket, actual another file");
        }
        Files.delete(socket);
    }

    private static long mac(byte[] data, int offset) {
        long mac = 0;
        for (int i = 0; i < 6; i++) mac = (mac << 8) | (data[offset + i] & 0xff);
        return mac;
    }

    /** The group bit: the least significant bit of the first octet (broadcast is a multicast). */
    private static boolean multicast(long mac) {
        return (mac & (1L << 40)) != 0;
    }

    static String macString(long mac) {
        StringBuilder s = new StringBuilder();
        for (int shift = 40; shift >= 0; shift -= 8) {
            if (s.length() > 0) s.append(':');
            s.append(String.format("%02x", (mac >>> shift) & 0xff));
        }
        return s.toString();
    }

    private static long nanos(Instant t) {
        return t.getEpochSecond() * 1_000_000_000L + t.getNano();
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception e) {
            // closing on the way out; nothing else to do
        }
    }

    /** A member's port; every field is guarded by the switch's lock. */
    private static final class Port {
        final String member;
        final Path socket;
        final ServerSocketChannel server;
        final ByteBuffer in = ByteBuffer.allocate(4 + MAX_FRAME_BYTES);
        final ArrayDeque<Frame> queue = new ArrayDeque<>();
        SocketChannel connection;
        SelectionKey key;
        ByteBuffer out;
        boolean held;
        long queuedBytes;
        int maxQueuedFrames;
        long framesIn, bytesIn, framesOut, bytesOut, droppedQueueFull, droppedUnconnected, malformedFrames, protocolViolations;
        long connections, rejectedConnections;
        /** Frames a checkpoint preloaded that are not written yet (by identity: two equal frames are two frames). */
        final java.util.Set<Frame> preloaded = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        boolean outPreloaded;
        long preloadedFramesOut;

        Port(String member, Path socket, ServerSocketChannel server) {
            this.member = member;
            this.socket = socket;
            this.server = server;
        }

        void offer(Frame f, Options options) {
            if (connection == null && !held) {
                droppedUnconnected++;
            } else if (queue.size() >= options.queueFrames() || queuedBytes + f.data().length > options.queueBytes()) {
                droppedQueueFull++;
            } else {
                queue.add(f);
                queuedBytes += f.data().length;
                maxQueuedFrames = Math.max(maxQueuedFrames, queue.size());
            }
        }

        void disconnect() {
            if (connection == null) return;
            closeQuietly(connection);
            connection = null;
            key = null;
            in.clear();
        }

        PortStats stats(Options options) {
            return new PortStats(member, connection != null, held, queue.size(), queuedBytes, options.queueFrames(), options.queueBytes(),
                    maxQueuedFrames, framesIn, bytesIn, framesOut, bytesOut, droppedQueueFull, droppedUnconnected, malformedFrames,
                    protocolViolations, connections, rejectedConnections, preloadedFramesOut);
        }
    }
}
