package dev.thaw.cluster.net;

import dev.thaw.util.Closing;
import dev.thaw.util.OwnerOnly;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.net.InetSocketAddress;
import java.nio.channels.DatagramChannel;
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
 *
 * <p>Two hosts: a switch may also have members on another host, behind another switch, the two joined by a UDP tunnel
 * ({@link Tunnel}, {@link TunnelDatagram}). Such a remote member has a port here without a socket: frames for it (to its learned
 * MAC, or a flooded copy) wait in its queue like any other's, held or not, and go into the tunnel naming it. A datagram from the
 * tunnel is delivered to the local member it names only, never flooded and never sent back into the tunnel, so nothing loops.
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

    /**
     * A UDP tunnel to the switch of another host: this switch's datagram socket, the peer's, and the members behind the peer.
     * Datagrams from any other address are counted as malformed and dropped.
     */
    public record Tunnel(InetSocketAddress local, InetSocketAddress peer, List<String> remoteMembers) {
        public Tunnel {
            remoteMembers = List.copyOf(remoteMembers);
            if (remoteMembers.isEmpty()) throw new IllegalArgumentException("tunnel: expected at least one member behind the peer, actual none");
            if (local.isUnresolved() || peer.isUnresolved()) {
                throw new IllegalArgumentException("tunnel: expected resolved addresses, actual " + local + " = " + peer);
            }
        }

        /** {@code LOCAL_IP:PORT=PEER_IP:PORT} (numeric IPv4 addresses), as the commands take it. */
        public static Tunnel parse(String spec, List<String> remoteMembers) {
            String[] ends = spec.split("=", -1);
            if (ends.length != 2) throw new IllegalArgumentException("tunnel: expected LOCAL_IP:PORT=PEER_IP:PORT, actual '" + spec + "'");
            return new Tunnel(address(ends[0], "local"), address(ends[1], "peer"), remoteMembers);
        }

        private static InetSocketAddress address(String s, String what) {
            var m = Pattern.compile("(\\d{1,3}(?:\\.\\d{1,3}){3}):(\\d{1,5})").matcher(s);
            if (!m.matches() || Integer.parseInt(m.group(2)) > 65535) {
                throw new IllegalArgumentException("tunnel: expected the " + what + " end as IPV4:PORT, actual '" + s + "'");
            }
            try {
                return new InetSocketAddress(java.net.InetAddress.getByName(m.group(1)), Integer.parseInt(m.group(2)));
            } catch (java.net.UnknownHostException e) {
                throw new IllegalArgumentException("tunnel: expected the " + what + " end as IPV4:PORT, actual '" + s + "'", e);
            }
        }
    }

    /**
     * The tunnel's counts.
     *
     * @param lost       datagrams the peer sent that never came (gaps in its sequence): a UDP buffer overflowed, or the path dropped them
     * @param outOfOrder datagrams that came after a later one (delivered anyway; TCP sorts them out)
     * @param oversize   frames too long for a datagram, dropped before the tunnel
     * @param sendFailed frames whose datagram the kernel refused to send (no route to the peer), dropped
     * @param malformed  datagrams that were not one, or named members not where the tunnel says (dropped; the last reason is kept)
     */
    public record TunnelStats(InetSocketAddress local, InetSocketAddress peer, long datagramsOut, long bytesOut, long datagramsIn,
                              long bytesIn, long lost, long outOfOrder, long oversize, long sendFailed, long malformed,
                              String lastMalformed) {
        /** Nothing lost, dropped or malformed on this side. */
        public boolean clean() {
            return lost == 0 && oversize == 0 && sendFailed == 0 && malformed == 0;
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
    private DatagramChannel tunnelChannel;
    private Tunnel tunnel;
    private final ByteBuffer tunnelIn = ByteBuffer.allocate(TunnelDatagram.MAX_DATAGRAM_BYTES + 1);
    private long tunnelSequence, peerSequence, datagramsOut, tunnelBytesOut, datagramsIn, tunnelBytesIn, tunnelLost, tunnelOutOfOrder,
            tunnelOversize, tunnelMalformed, tunnelSendFailed;
    private String lastMalformed = "";
    private boolean tunnelBlocked;
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
        return open(socketDir, members, options, clock, null);
    }

    /**
     * As {@link #open(Path, List, Options, InstantSource)}, with {@code members} on this host and the tunnel's remote members
     * behind its peer (null: no tunnel). The tunnel's socket is bound before this returns.
     */
    public static ClusterSwitch open(Path socketDir, List<String> members, Options options, InstantSource clock, Tunnel tunnel)
            throws IOException {
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
            if (tunnel != null) {
                for (String m : tunnel.remoteMembers()) {
                    if (!MEMBER_NAME.matcher(m).matches()) {
                        throw new IllegalArgumentException("switch: expected a remote member name matching " + MEMBER_NAME + ", actual '" + m + "'");
                    }
                    if (sw.ports.containsKey(m)) {
                        throw new IllegalArgumentException("switch: expected " + m + " either here or behind the tunnel, actual both (or twice)");
                    }
                    sw.ports.put(m, new Port(m, null, null));
                }
                sw.tunnel = tunnel;
                sw.tunnelChannel = DatagramChannel.open(StandardProtocolFamily.INET);
                // A burst (held frames released) must not overflow the receiving socket: ask for 4 MiB (the kernel caps it at rmem_max).
                sw.tunnelChannel.setOption(java.net.StandardSocketOptions.SO_RCVBUF, 4 << 20);
                sw.tunnelChannel.setOption(java.net.StandardSocketOptions.SO_SNDBUF, 4 << 20);
                sw.tunnelChannel.bind(tunnel.local());
                sw.tunnelChannel.configureBlocking(false);
                sw.tunnelChannel.register(sw.selector, SelectionKey.OP_READ, tunnel);
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
        Port p = port(member);
        if (p.remote()) throw new IllegalArgumentException("switch: " + member + " is behind the tunnel to " + tunnel.peer() + ": expected a member here");
        return p.socket;
    }

    /**
     * Holds {@code member} until its QEMU connects: frames sent to it before then wait in its queue (a switch whose members are
     * restored by other processes does not know when they run; a paused QEMU leaves them in its socket until it runs).
     */
    public void holdUntilConnected(String member) {
        synchronized (lock) {
            checkOpen();
            Port p = port(member);
            if (p.remote()) throw new IllegalArgumentException("switch: " + member + " is behind the tunnel: expected a member here");
            p.held = p.connection == null;
            p.releaseOnConnect = p.held;
        }
    }

    /** Fails when the switch was closed, or its thread failed (every member then disconnected). */
    public void check() {
        synchronized (lock) {
            checkOpen();
        }
    }

    /** The tunnel's counts, or null when this switch has none. */
    public TunnelStats tunnelStats() {
        synchronized (lock) {
            if (tunnel == null) return null;
            return new TunnelStats(tunnel.local(), tunnel.peer(), datagramsOut, tunnelBytesOut, datagramsIn, tunnelBytesIn, tunnelLost,
                    tunnelOutOfOrder, tunnelOversize, tunnelSendFailed, tunnelMalformed, lastMalformed);
        }
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
     * Stops forwarding (until {@link #resume}, if ever): every member is held, and the frames in every queue are the frames
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

    /**
     * Ends a {@link #cut} for a cluster that goes on after its save ({@code thaw cluster save --keep-running}): every member is
     * released, the frames held since the cut are delivered to their receivers in the order the switch read them (the same frames
     * the checkpoint keeps), and forwarding goes on. Refused on a switch that was not cut.
     */
    public void resume() {
        synchronized (lock) {
            checkOpen();
            if (!cut) throw new IllegalStateException("switch: resume: expected a cut switch, actual one that forwards");
            cut = false;
            for (Port p : ports.values()) p.held = false;
        }
        selector.wakeup();
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
            if (p.remote()) continue;
            p.disconnect();
            Closing.quietly(p.server);
            try {
                Files.deleteIfExists(p.socket);
            } catch (IOException e) {
                log.warn("cluster switch: could not remove {}: {}", p.socket, e.toString());
            }
        }
        if (tunnelChannel != null) Closing.quietly(tunnelChannel);
        Closing.quietly(selector);
    }

    private void run() {
        try {
            while (!closed) {
                selector.select(SELECT_INTERVAL.toMillis());
                synchronized (lock) {
                    for (SelectionKey key : selector.selectedKeys()) {
                        if (!key.isValid()) continue;
                        if (key.attachment() instanceof Tunnel) {
                            if (key.isReadable()) readTunnel();
                            continue;
                        }
                        Port p = (Port) key.attachment();
                        if (key.isAcceptable()) accept(p);
                        else if (key.isReadable()) read(p);
                    }
                    selector.selectedKeys().clear();
                    tunnelBlocked = false;
                    for (Port p : ports.values()) flush(p);
                    if (tunnelChannel != null) {
                        tunnelChannel.keyFor(selector).interestOps(SelectionKey.OP_READ | (tunnelBlocked ? SelectionKey.OP_WRITE : 0));
                    }
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
            Closing.quietly(c);
            return;
        }
        c.configureBlocking(false);
        p.connection = c;
        if (p.releaseOnConnect && !cut) {
            p.held = false;
            p.releaseOnConnect = false;
        }
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
        StreamFraming.Frames read = StreamFraming.take(p.in);
        for (byte[] data : read.frames()) forward(p, data);
        if (read.badLength() >= 0) {
            p.protocolViolations++;
            log.warn("cluster switch: {} sent a frame length of {}: expected at most {} (QEMU's NET_BUFSIZE); connection ended",
                    p.member, read.badLength(), MAX_FRAME_BYTES);
            lose(p);
            return;
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

    /** Reads every datagram waiting in the tunnel and delivers each frame to the local member it names. */
    private void readTunnel() throws IOException {
        while (true) {
            tunnelIn.clear();
            java.net.SocketAddress sender = tunnelChannel.receive(tunnelIn);
            if (sender == null) return;
            tunnelIn.flip();
            TunnelDatagram d;
            try {
                if (!sender.equals(tunnel.peer())) {
                    throw new TunnelDatagram.Malformed("tunnel datagram from " + sender + ": expected one from the peer " + tunnel.peer()
                            + ", actual another address");
                }
                d = TunnelDatagram.decode(tunnelIn, sender.toString());
                Port from = ports.get(d.from());
                Port to = ports.get(d.to());
                if (from == null || !from.remote()) {
                    throw new TunnelDatagram.Malformed("tunnel datagram " + d.sequence() + " from " + sender + ": expected a sender behind the"
                            + " tunnel " + tunnel.remoteMembers() + ", actual " + d.from());
                }
                if (to == null || to.remote()) {
                    throw new TunnelDatagram.Malformed("tunnel datagram " + d.sequence() + " from " + sender + ": expected a receiver on this"
                            + " switch, actual " + d.to());
                }
            } catch (TunnelDatagram.Malformed e) {
                if (tunnelMalformed++ < 10) log.warn("cluster switch: {}; dropped", e.getMessage());
                lastMalformed = e.getMessage();
                continue;
            }
            datagramsIn++;
            tunnelBytesIn += tunnelIn.limit();
            if (d.sequence() > peerSequence + 1) tunnelLost += d.sequence() - peerSequence - 1;
            if (d.sequence() <= peerSequence) {
                tunnelOutOfOrder++;
                if (tunnelLost > 0) tunnelLost--; // it was counted as lost when a later one came first
            } else {
                peerSequence = d.sequence();
            }
            Port from = ports.get(d.from());
            from.framesIn++;
            from.bytesIn += d.frame().length;
            long source = mac(d.frame(), 6);
            if (!multicast(source)) macTable.put(source, from.member);
            long sequence = nextSequence++;
            long[] record = traffic.computeIfAbsent(from.member, k -> new TreeMap<>()).computeIfAbsent(d.to(), k -> new long[3]);
            record[0]++;
            record[1] += d.frame().length;
            record[2] = nanos(clock.instant());
            ports.get(d.to()).offer(new Frame(sequence, from.member, d.to(), d.frame()), options);
        }
    }

    /** Sends the queued frames of a member behind the tunnel, one datagram each, until the tunnel's socket takes no more. */
    private void flushRemote(Port p) {
        while (!p.held && !p.queue.isEmpty() && !tunnelBlocked) {
            Frame f = p.queue.peek();
            if (f.data().length > TunnelDatagram.MAX_FRAME_BYTES || f.data().length < ETHERNET_HEADER_BYTES) {
                p.queue.poll();
                p.queuedBytes -= f.data().length;
                p.preloaded.remove(f);
                tunnelOversize++;
                continue;
            }
            byte[] datagram = new TunnelDatagram(tunnelSequence + 1, f.from(), p.member, f.data()).encode();
            try {
                if (tunnelChannel.send(ByteBuffer.wrap(datagram), tunnel.peer()) == 0) {
                    tunnelBlocked = true; // the socket's buffer is full: the selector says when it takes more
                    return;
                }
            } catch (IOException e) { // the path to the peer is gone (its address removed): the frame is lost, counted
                if (tunnelSendFailed++ < 10) log.warn("cluster switch: sending to {} through the tunnel to {} failed: {}", p.member, tunnel.peer(), e.toString());
                p.queue.poll();
                p.queuedBytes -= f.data().length;
                p.preloaded.remove(f);
                continue;
            }
            tunnelSequence++;
            datagramsOut++;
            tunnelBytesOut += datagram.length;
            p.queue.poll();
            p.queuedBytes -= f.data().length;
            p.framesOut++;
            p.bytesOut += f.data().length;
            if (p.preloaded.remove(f)) p.preloadedFramesOut++;
        }
    }

    /** Writes queued frames to a connected member that is not held, until its socket takes no more. */
    private void flush(Port p) {
        if (p.remote()) {
            flushRemote(p);
            return;
        }
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
        boolean releaseOnConnect;

        Port(String member, Path socket, ServerSocketChannel server) {
            this.member = member;
            this.socket = socket;
            this.server = server;
        }

        /** A member behind the tunnel: no socket here, the tunnel is its connection. */
        boolean remote() {
            return server == null;
        }

        void offer(Frame f, Options options) {
            if (connection == null && !remote() && !held) {
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
            Closing.quietly(connection);
            connection = null;
            key = null;
            in.clear();
        }

        PortStats stats(Options options) {
            return new PortStats(member, connection != null || remote(), held, queue.size(), queuedBytes, options.queueFrames(), options.queueBytes(),
                    maxQueuedFrames, framesIn, bytesIn, framesOut, bytesOut, droppedQueueFull, droppedUnconnected, malformedFrames,
                    protocolViolations, connections, rejectedConnections, preloadedFramesOut);
        }
    }
}
