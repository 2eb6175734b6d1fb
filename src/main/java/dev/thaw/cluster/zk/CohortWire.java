package dev.thaw.cluster.zk;

import dev.thaw.cluster.CohortMessage;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import org.apache.curator.framework.recipes.queue.QueueSerializer;

/**
 * A cohort message as it travels in ZooKeeper (an item of Curator's distributed queue), big-endian: its type code (one byte,
 * {@link CohortMessage.Type}: 0 is invalid), the member's name (two bytes of length, UTF-8), and for LOAD the working set's pages
 * (eight bytes). Decoding checks every field and that nothing follows.
 */
public final class CohortWire implements QueueSerializer<CohortMessage> {
    /** The queues' items as they are: each side decodes what it takes itself, so a malformed one fails with a clear error. */
    static final QueueSerializer<byte[]> RAW = new QueueSerializer<>() {
        @Override
        public byte[] serialize(byte[] item) {
            return item;
        }

        @Override
        public byte[] deserialize(byte[] bytes) {
            return bytes;
        }
    };

    public static final CohortWire INSTANCE = new CohortWire();
    private static final int MAX_NAME_BYTES = 255;

    private CohortWire() {}

    @Override
    public byte[] serialize(CohortMessage m) {
        byte[] name = m.member().getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(16 + name.length);
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            out.writeByte(m.type().code());
            out.writeShort(name.length);
            out.write(name);
            if (m instanceof CohortMessage.Load load) out.writeLong(load.workingSetPages());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return bytes.toByteArray();
    }

    /** @throws IllegalArgumentException naming the field, as expected ... actual ... */
    @Override
    public CohortMessage deserialize(byte[] bytes) {
        ByteBuffer in = ByteBuffer.wrap(bytes);
        try {
            CohortMessage.Type type = CohortMessage.Type.of(Byte.toUnsignedInt(in.get()));
            int length = Short.toUnsignedInt(in.getShort());
            if (length == 0 || length > MAX_NAME_BYTES) {
                throw new IllegalArgumentException("cohort message: expected a member name of 1.." + MAX_NAME_BYTES + " bytes, actual " + length);
            }
            byte[] name = new byte[length];
            in.get(name);
            String member = StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(name)).toString();
            CohortMessage m = switch (type) {
                case LOAD -> new CohortMessage.Load(member, in.getLong());
                case LOAD_FIN -> new CohortMessage.LoadFin(member);
                case START -> new CohortMessage.Start(member);
                case START_FIN -> new CohortMessage.StartFin(member);
                case RESTORE_FIN -> new CohortMessage.RestoreFin(member);
                case INVALID -> throw new IllegalStateException("Type.of never returns INVALID");
            };
            if (in.hasRemaining()) {
                throw new IllegalArgumentException("cohort message " + type + ": expected " + in.position() + " bytes, actual " + bytes.length);
            }
            return m;
        } catch (BufferUnderflowException e) {
            throw new IllegalArgumentException("cohort message: expected more than " + bytes.length + " bytes, actual a message cut short", e);
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("cohort message: expected a UTF-8 member name, actual malformed bytes", e);
        }
    }
}
