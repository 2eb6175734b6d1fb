package dev.thaw.guest;

import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The host side of the demo guest's agent ({@code memsum}, on the guest's ttyS1). Requests and
 * answers are lines that carry an id, so a late answer to an earlier request is never mistaken
 * for the current one. The serial line may lose bytes sent before the guest opened its port;
 * {@link #awaitReady} therefore pings until an answer comes.
 */
public final class GuestAgent implements AutoCloseable {
    /** memsum reads the whole region: seconds for GiBs under TCG. */
    public static final Duration MEMSUM_TIMEOUT = Duration.ofMinutes(3);
    public static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(20);

    private final String peer;
    private final SocketChannel channel;
    private final Journal<String> answers = new Journal<>(10_000);
    private final AtomicLong nextId = new AtomicLong(1);

    /** A checksum of the whole region wsbench filled. */
    public record MemSum(String checksumHex, long byteCount) {}

    /** The agent answered {@code error ...}, or not in the expected form. */
    public static final class AgentException extends RuntimeException {
        public AgentException(String message) {
            super(message);
        }
    }

    private GuestAgent(String peer, SocketChannel channel) {
        this.peer = peer;
        this.channel = channel;
        Thread.ofPlatform().daemon().name("guest-agent-" + peer).start(this::readLoop);
    }

    /** Connects to the agent port of a running VM (its ttyS1 chardev). */
    public static GuestAgent connect(QemuVm vm) {
        return connect(vm.controlSocket(), vm.name());
    }

    public static GuestAgent connect(Path socket, String peer) {
        try {
            SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX);
            channel.connect(UnixDomainSocketAddress.of(socket));
            return new GuestAgent(peer, channel);
        } catch (IOException e) {
            throw new AgentException(peer + ": cannot connect to the guest agent socket " + socket + ": " + e.getMessage());
        }
    }

    private void readLoop() {
        ByteBuffer buffer = ByteBuffer.allocate(4096);
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        try {
            while (channel.read(buffer.clear()) >= 0) {
                buffer.flip();
                while (buffer.hasRemaining()) {
                    byte b = buffer.get();
                    if (b == '\n') {
                        answers.append(line.toString(StandardCharsets.UTF_8).replace("\r", "").strip());
                        line.reset();
                    } else if (line.size() < 4096) {
                        line.write(b);
                    }
                }
            }
        } catch (IOException e) {
            // connection closed
        }
        answers.close("the guest agent connection closed");
    }

    /** Pings until the agent answers, resending every half second (early bytes may be lost). */
    public void awaitReady(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        Set<String> sent = new HashSet<>();
        Journal<String>.Cursor cursor = answers.cursor();
        while (System.nanoTime() < deadline) {
            String id = Long.toString(nextId.getAndIncrement());
            sent.add(id);
            send("ping " + id);
            try {
                Optional<String> pong = cursor.await(l -> l.startsWith("pong ") && sent.contains(l.substring(5).strip()),
                        Duration.ofMillis(500));
                if (pong.isPresent()) return;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AgentException(peer + ": interrupted while waiting for the guest agent");
            }
            if (answers.isClosed()) {
                throw new AgentException(peer + ": " + answers.closedReason() + " before the agent answered a ping");
            }
        }
        throw new AgentException(peer + ": the guest agent did not answer a ping within " + timeout.toSeconds() + " s");
    }

    public MemSum memsum() {
        return parseMemsum(request("memsum", "memsum", MEMSUM_TIMEOUT));
    }

    /**
     * The checksum of MiB [firstMiB, firstMiB + mib) of wsbench's region. The part at and beyond the
     * working set W is never written after the fill, so its sum can be compared while wsbench runs.
     */
    public MemSum memsum(long firstMiB, long mib) {
        return parseMemsum(request("memsum", "memsum", MEMSUM_TIMEOUT, " " + firstMiB + " " + mib));
    }

    /**
     * The checksum of the pages of wsbench's region outside its working set, wherever its layout puts them (the pages
     * wsbench's hot map leaves clear): never written after the fill, so the sum can be compared while wsbench runs.
     */
    public MemSum memsumCold() {
        return parseMemsum(request("memsum", "memsum", MEMSUM_TIMEOUT, " cold"));
    }

    private MemSum parseMemsum(String[] words) {
        if (words.length != 4) {
            throw new AgentException(peer + ": malformed memsum answer: expected 'memsum ID HEX BYTES', actual '"
                    + String.join(" ", words) + "'");
        }
        return new MemSum(words[2], Long.parseLong(words[3]));
    }

    /** Stops wsbench (SIGSTOP), so that its memory stops changing. */
    public void pauseWorkload() {
        request("pause", "paused", REQUEST_TIMEOUT);
    }

    public void resumeWorkload() {
        request("resume", "resumed", REQUEST_TIMEOUT);
    }

    /** A checksum of MiB of the guest's first virtio disk, as read from the disk (O_DIRECT). */
    public record DiskSum(String checksumHex, long byteCount) {}

    /**
     * Fills MiB [firstMiB, firstMiB + mib) of the guest's first virtio disk ({@code /dev/vda}) with bytes that depend on
     * {@code seed} and the offset, written past the guest's cache and fsynced: what a save must find on the disk.
     */
    public void diskWrite(long firstMiB, long mib, long seed) {
        request("disk", "disk", MEMSUM_TIMEOUT, " write " + firstMiB + " " + mib + " " + seed);
    }

    /** The checksum of MiB [firstMiB, firstMiB + mib) of {@code /dev/vda}, read past the guest's cache. */
    public DiskSum diskSum(long firstMiB, long mib) {
        return diskChecksum("sum", firstMiB, mib);
    }

    private DiskSum diskChecksum(String op, long firstMiB, long mib) {
        String[] words = request("disk", "disk", MEMSUM_TIMEOUT, " " + op + " " + firstMiB + " " + mib);
        if (words.length != 4) {
            throw new AgentException(peer + ": malformed disk answer: expected 'disk ID HEX BYTES', actual '" + String.join(" ", words) + "'");
        }
        return new DiskSum(words[2], Long.parseLong(words[3]));
    }

    /**
     * Reads MiB [firstMiB, firstMiB + mib) of {@code /dev/vda} through the guest's page cache (no O_DIRECT; the agent keeps the
     * device open, since the kernel drops a block device's cache at its last close), so that the
     * cache then holds it: a guest that has read a file.
     */
    public DiskSum diskRead(long firstMiB, long mib) {
        return diskChecksum("read", firstMiB, mib);
    }

    /**
     * What the guest's {@code /proc/meminfo} said before and after a drop of its clean page cache, in bytes.
     *
     * @param dropCachesValue what was written to {@code /proc/sys/vm/drop_caches} (1: the page cache only)
     */
    public record CacheDrop(int dropCachesValue, long buffersBytesBefore, long cachedBytesBefore, long freeBytesBefore,
                            long buffersBytesAfter, long cachedBytesAfter, long freeBytesAfter) {}

    /**
     * {@code sync}, then drops the guest's clean page cache ({@code echo 1 > /proc/sys/vm/drop_caches}); as long as a memsum
     * may take, since the sync writes whatever the guest has dirty.
     */
    public CacheDrop dropCaches() {
        String[] words = request("dropcaches", "dropcaches", MEMSUM_TIMEOUT);
        if (words.length != 9) {
            throw new AgentException(peer + ": malformed dropcaches answer: expected 'dropcaches ID VALUE' and six kB counts, actual '"
                    + String.join(" ", words) + "'");
        }
        long[] kb = new long[6];
        try {
            for (int i = 0; i < 6; i++) kb[i] = Long.parseLong(words[3 + i]);
            return new CacheDrop(Integer.parseInt(words[2]), kb[0] << 10, kb[1] << 10, kb[2] << 10, kb[3] << 10, kb[4] << 10, kb[5] << 10);
        } catch (NumberFormatException e) {
            throw new AgentException(peer + ": malformed dropcaches answer: expected numbers, actual '" + String.join(" ", words) + "'");
        }
    }

    /** The guest's TCP counters since its boot (retransmissions, retransmission timeouts: {@link TcpCounters}). */
    public TcpCounters tcpCounters() {
        String[] words = request("tcp", "tcp", REQUEST_TIMEOUT);
        try {
            return TcpCounters.parse(String.join(" ", words));
        } catch (IllegalArgumentException e) {
            throw new AgentException(peer + ": " + e.getMessage());
        }
    }

    /** Sends {@code verb id} and returns the words of the answer {@code expectedAnswer id ...}. */
    String[] request(String verb, String expectedAnswer, Duration timeout) {
        return request(verb, expectedAnswer, timeout, "");
    }

    private String[] request(String verb, String expectedAnswer, Duration timeout, String arguments) {
        String id = Long.toString(nextId.getAndIncrement());
        Journal<String>.Cursor cursor = answers.cursor();
        send(verb + " " + id + arguments);
        Optional<String> answer;
        try {
            answer = cursor.await(l -> {
                String[] w = l.split(" ");
                return w.length >= 2 && w[1].equals(id);
            }, timeout);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AgentException(peer + ": interrupted while waiting for '" + verb + "'");
        }
        if (answer.isEmpty()) {
            throw new AgentException(peer + ": no answer to '" + verb + "' within " + timeout.toSeconds() + " s"
                    + (answers.isClosed() ? " (" + answers.closedReason() + ")" : ""));
        }
        String[] words = answer.get().split(" ");
        if (!words[0].equals(expectedAnswer)) {
            throw new AgentException(peer + ": '" + verb + "' failed: expected '" + expectedAnswer + " " + id + " ...', actual '"
                    + answer.get() + "'");
        }
        return words;
    }

    private void send(String line) {
        ByteBuffer bytes = ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.US_ASCII));
        try {
            synchronized (channel) {
                while (bytes.hasRemaining()) channel.write(bytes);
            }
        } catch (IOException e) {
            throw new AgentException(peer + ": cannot send '" + line + "' to the guest agent: " + e.getMessage());
        }
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException e) {
            // closing anyway
        }
    }
}
