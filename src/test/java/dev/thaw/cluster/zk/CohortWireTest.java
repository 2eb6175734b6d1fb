package dev.thaw.cluster.zk;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.cluster.CohortMessage;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class CohortWireTest {
    private final CohortWire wire = CohortWire.INSTANCE;

    @Test
    void everyMessageRoundTrips() {
        List<CohortMessage> all = List.of(new CohortMessage.Load("m1", 12345L), new CohortMessage.Load("m2", 0),
                new CohortMessage.LoadFin("m1"), new CohortMessage.Start("m-é"), new CohortMessage.StartFin("m1"), new CohortMessage.RestoreFin("m2"));
        for (CohortMessage m : all) assertThat(wire.deserialize(wire.serialize(m))).isEqualTo(m);
        byte[] load = wire.serialize(new CohortMessage.Load("m1", 7));
        assertThat(load[0]).isEqualTo((byte) CohortMessage.Type.LOAD.code());
        assertThat(load).hasSize(1 + 2 + 2 + 8);
    }

    @Test
    void malformedMessagesFailSayingWhat() {
        byte[] ok = wire.serialize(new CohortMessage.Start("m1"));
        byte[] zeroed = new byte[ok.length];
        assertThatThrownBy(() -> wire.deserialize(zeroed)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("expected a code in 1..5, actual 0");
        byte[] unknown = ok.clone();
        unknown[0] = 9;
        assertThatThrownBy(() -> wire.deserialize(unknown)).hasMessageContaining("actual 9");
        assertThatThrownBy(() -> wire.deserialize(Arrays.copyOf(ok, ok.length - 1))).hasMessageContaining("cut short");
        assertThatThrownBy(() -> wire.deserialize(new byte[0])).hasMessageContaining("cut short");
        byte[] longer = Arrays.copyOf(ok, ok.length + 1);
        assertThatThrownBy(() -> wire.deserialize(longer)).hasMessageContaining("expected " + ok.length + " bytes, actual " + longer.length);
        byte[] load = wire.serialize(new CohortMessage.Load("m1", 7));
        assertThatThrownBy(() -> wire.deserialize(Arrays.copyOf(load, load.length - 3))).hasMessageContaining("cut short");
        byte[] negative = load.clone();
        negative[5] = (byte) 0x80;
        assertThatThrownBy(() -> wire.deserialize(negative)).hasMessageContaining("expected workingSetPages >= 0");
        byte[] noName = {(byte) CohortMessage.Type.START.code(), 0, 0};
        assertThatThrownBy(() -> wire.deserialize(noName)).hasMessageContaining("expected a member name of 1..255 bytes, actual 0");
        byte[] badUtf8 = {(byte) CohortMessage.Type.START.code(), 0, 1, (byte) 0xff};
        assertThatThrownBy(() -> wire.deserialize(badUtf8)).hasMessageContaining("expected a UTF-8 member name");
    }

    @Test
    void theRunsDataRoundTripsAndIsChecked() {
        RunInfo run = new RunInfo("5f0b1c9e-1d8e-4c8f-9a0e-2b7c3d4e5f60", Path.of("/tmp/thaw-cluster-x"), 2);
        assertThat(RunInfo.decode(run.encode())).isEqualTo(run);
        assertThatThrownBy(() -> RunInfo.decode("a\nb\n".getBytes())).hasMessageContaining("expected 3 lines (run id, switch directory, members), actual 2");
        assertThatThrownBy(() -> RunInfo.decode("5f0b1c9e-1d8e-4c8f-9a0e-2b7c3d4e5f60\n/tmp/x\nlots\n".getBytes()))
                .hasMessageContaining("expected a number of members, actual 'lots'");
        assertThatThrownBy(() -> new RunInfo("5f0b1c9e-1d8e-4c8f-9a0e-2b7c3d4e5f60", Path.of("relative"), 2))
                .hasMessageContaining("expected an absolute switch directory");
        assertThatThrownBy(() -> new RunInfo("5f0b1c9e-1d8e-4c8f-9a0e-2b7c3d4e5f60", Path.of("/tmp/x"), 0))
                .hasMessageContaining("expected at least 1 member, actual 0");
    }
}
