package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.thaw.guest.TcpCounters;
import dev.thaw.qemu.ConsoleLine;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class ClusterDisruptionTest {
    private static final long MS = 1_000_000L;

    /** An rx tick line as tcpstream prints it, arriving at the host {@code lateMs} after the guest printed it. */
    private static ConsoleLine rx(long guestMs, long bytes, String peer, long lateMs) {
        return new ConsoleLine((guestMs + lateMs) * MS, "tcpstream rx tick 0 " + guestMs * MS + " " + bytes + " 0 " + peer);
    }

    @Test
    void readsOnlyTheServersReceiveTicks() {
        List<ConsoleLine> lines = List.of(new ConsoleLine(1, "thaw-init up 1.2s"), new ConsoleLine(2, "tcpstream tx tick 1 100 800"),
                rx(100, 4096, "10.0.3.2", 5), new ConsoleLine(3, "tcpstream rx tick 1 garbage"), rx(200, 8192, "10.0.3.3", 5));
        assertThat(ClusterDisruption.rxTicks(lines)).containsExactly(
                new ClusterDisruption.StreamTick(105 * MS, 100 * MS, 4096, "10.0.3.2"),
                new ClusterDisruption.StreamTick(205 * MS, 200 * MS, 8192, "10.0.3.3"));
    }

    @Test
    void theRateAddsUpEveryPeersBytesOverItsGuestTime() {
        List<ConsoleLine> lines = new ArrayList<>();
        for (int i = 0; i <= 10; i++) {
            lines.add(rx(1000 + 100L * i, 1_000_000L + 100_000L * i, "10.0.3.2", i % 3)); // 1 MB/s
            lines.add(rx(1050 + 100L * i, 5_000_000L + 300_000L * i, "10.0.3.3", 7)); // 3 MB/s
        }
        assertThat(ClusterDisruption.bytesPerSecond(ClusterDisruption.rxTicks(lines))).isCloseTo(4e6, within(1.0));
        assertThatThrownBy(() -> ClusterDisruption.bytesPerSecond(List.of()))
                .hasMessageContaining("expected rx ticks, actual none");
        assertThatThrownBy(() -> ClusterDisruption.bytesPerSecond(ClusterDisruption.rxTicks(List.of(rx(100, 1, "10.0.3.2", 0)))))
                .hasMessageContaining("peer 10.0.3.2: expected at least two ticks over time, actual 1");
    }

    /**
     * A stream at 1 MB/s before the save; after a restore the server runs at 1 s, receives nothing until 3 s (one blocked read:
     * one long interval), then 1 MB/s again: back at 0.8 at about 3 s, never before.
     */
    @Test
    void aGapAfterTheRestoreDelaysTheTimeTo80UntilTheStreamIsBack() {
        long origin = 10_000 * MS;
        List<ConsoleLine> lines = new ArrayList<>();
        lines.add(new ConsoleLine(origin + 1000 * MS, "tcpstream rx tick 5 " + 1000 * MS + " 50000000 0 10.0.3.2"));
        lines.add(new ConsoleLine(origin + 3000 * MS, "tcpstream rx tick 6 " + 3000 * MS + " 50001000 0 10.0.3.2"));
        for (int i = 1; i <= 50; i++) {
            long g = 3000 + 100L * i;
            lines.add(new ConsoleLine(origin + g * MS + (i % 2) * 30 * MS, "tcpstream rx tick " + (6 + i) + " " + g * MS + " "
                    + (50_001_000L + 100_000L * i) + " 0 10.0.3.2"));
        }
        ClusterDisruption.Recovery r = ClusterDisruption.recovery(ClusterDisruption.rxTicks(lines), origin, 1000 * MS, 8000 * MS, 1e6);
        assertThat(r.timeTo80Seconds()).isPresent();
        assertThat(r.timeTo80Seconds().get()).isBetween(2.75, 3.25);
        assertThat(r.firstAt80Seconds()).isEqualTo(r.timeTo80Seconds());
        assertThat(r.bytesPerSecondPerStep()).hasSize(32);
        assertThat(r.bytesPerSecondPerStep().get(6)).as("2.0-2.25 s, in the gap").isLessThan(1e4);
        assertThat(r.bytesPerSecondPerStep().get(20)).as("5.0-5.25 s").isCloseTo(1e6, within(1e3));
    }

    @Test
    void aStreamThatNeverComesBackHasNoTimeTo80() {
        List<ConsoleLine> lines = new ArrayList<>();
        for (int i = 0; i <= 40; i++) lines.add(rx(1000 + 100L * i, 100_000L * i / 4, "10.0.3.2", 0)); // a quarter of the rate
        ClusterDisruption.Recovery r = ClusterDisruption.recovery(ClusterDisruption.rxTicks(lines), 0, 1000 * MS, 5000 * MS, 1e6);
        assertThat(r.timeTo80Seconds()).isEmpty();
        assertThat(r.firstAt80Seconds()).isEmpty();
    }

    /** Back at the rate before from 2 s, then a dip to a half at 5-6 s: back first at about 2 s, stays back only after the dip. */
    @Test
    void aLaterDipMovesTheTimeItStaysBackButNotTheTimeItWasFirstBack() {
        List<ConsoleLine> lines = new ArrayList<>();
        long bytes = 0;
        for (int i = 0; i <= 80; i++) {
            long g = 1000 + 100L * i;
            bytes += g <= 2000 ? 0 : g > 5000 && g <= 6000 ? 50_000 : 100_000;
            lines.add(rx(g, bytes, "10.0.3.2", 0));
        }
        ClusterDisruption.Recovery r = ClusterDisruption.recovery(ClusterDisruption.rxTicks(lines), 0, 1000 * MS, 9000 * MS, 1e6);
        assertThat(r.firstAt80Seconds().orElseThrow()).isBetween(1.75, 2.25);
        // The window from 5.6 s holds 0.4 s of the dip at a half and 0.6 s at the full rate: 0.8.
        assertThat(r.timeTo80Seconds().orElseThrow()).isCloseTo(5.6, within(0.05));
    }

    @Test
    void aNewConnectionFromTheSamePeerStartsANewSeries() {
        List<ConsoleLine> lines = List.of(rx(100, 900_000, "10.0.3.2", 0), rx(200, 1_000_000, "10.0.3.2", 0),
                rx(300, 50_000, "10.0.3.2", 0), rx(400, 150_000, "10.0.3.2", 0));
        List<Responsiveness.Progress> p = ClusterDisruption.progress(ClusterDisruption.rxTicks(lines), 0);
        assertThat(p).extracting(Responsiveness.Progress::ops).containsExactly(100_000L, 100_000L);
    }

    /**
     * After a restore the server's counts go on from the save's (here 50 MB), and a client's first tick has no tick before it in
     * the restored console: the bytes it adds (60 000 over the 100 ms before it, across the stop) are left out, as docs/cluster.md
     * says; every later tick counts.
     */
    @Test
    void aClientsFirstTickAfterTheRestoreIsLeftOut() {
        List<ConsoleLine> lines = List.of(rx(1000, 50_060_000, "10.0.3.2", 0), rx(1100, 50_160_000, "10.0.3.2", 0),
                rx(1200, 50_260_000, "10.0.3.2", 0), rx(1050, 7_000_000, "10.0.3.3", 0), rx(1150, 7_100_000, "10.0.3.3", 0));
        List<Responsiveness.Progress> p = ClusterDisruption.progress(ClusterDisruption.rxTicks(lines), 0);
        assertThat(p).extracting(Responsiveness.Progress::ops).containsExactly(100_000L, 100_000L, 100_000L);
        assertThat(p).extracting(Responsiveness.Progress::fromNanos).containsExactly(1000 * MS, 1050 * MS, 1100 * MS);
    }

    @Test
    void theSummaryGivesMediansPerStrategyAndCountsAStreamNotBackAsInfinite() {
        List<Double> flat = List.of(1.0, 2.0);
        List<ClusterDisruption.Run> runs = List.of(
                run("independent", 1, Optional.of(4.0), new TcpCounters(30, 3, 0, 0), 0, 300, 0, flat),
                run("held", 1, Optional.of(1.0), new TcpCounters(0, 0, 0, 0), 300, 0, 0, flat),
                run("independent", 2, Optional.empty(), new TcpCounters(50, 5, 0, 0), 0, 300, 2, List.of(3.0, 4.0, 5.0)),
                run("held", 2, Optional.of(2.0), new TcpCounters(2, 0, 0, 0), 300, 0, 0, List.of(5.0, 6.0)),
                run("independent", 3, Optional.of(5.0), new TcpCounters(40, 4, 0, 0), 0, 300, 0, flat));
        List<ClusterDisruption.Summary> s = ClusterDisruption.summarize(runs, "m1");
        assertThat(s).extracting(ClusterDisruption.Summary::strategy).containsExactly("independent", "held");
        ClusterDisruption.Summary ind = s.getFirst();
        assertThat(ind.runs()).isEqualTo(3);
        assertThat(ind.reached()).isEqualTo(2);
        assertThat(ind.medianTimeTo80Seconds()).isEqualTo(5.0);
        assertThat(ind.minTimeTo80Seconds()).isEqualTo(4.0);
        assertThat(ind.medianFirstAt80Seconds()).isEqualTo(2.5);
        assertThat(ind.minFirstAt80Seconds()).isEqualTo(2.0);
        assertThat(ind.medianCompletedSeconds()).isEqualTo(3.0);
        assertThat(ind.medianAllRunningSeconds()).isEqualTo(1.0);
        assertThat(ind.medianRetransSegs()).isEqualTo(40);
        assertThat(ind.medianTimeouts()).isEqualTo(4);
        assertThat(ind.totalTimeouts()).isEqualTo(12);
        assertThat(ind.medianFramesNotDelivered()).isEqualTo(300);
        assertThat(ind.medianClientAheadSeconds()).isEqualTo(1.5); // m2 ran at 0.5 s, m1 at 2.0 s
        ClusterDisruption.Summary held = s.get(1);
        assertThat(held.medianTimeTo80Seconds()).isEqualTo(1.5);
        assertThat(held.medianRetransSegs()).isEqualTo(1);
        assertThat(held.medianFramesHeld()).isEqualTo(300);
        assertThat(held.medianClientAheadSeconds()).isZero(); // m1 ran before m2: no client ahead of it
        assertThatThrownBy(() -> runs.getFirst().clientAheadSeconds("m9")).hasMessageContaining("expected member m9");
        assertThat(ClusterDisruption.medianPerStep(runs)).containsEntry("independent", List.of(1.0, 2.0)).containsEntry("held", List.of(3.0, 4.0));
        String table = ClusterDisruption.table(s, 10);
        assertThat(table).contains("independent").contains("held").contains("5.00 / 4.00").contains("1.50 / 1.00");
        assertThat(ClusterDisruption.table(ClusterDisruption.summarize(List.of(runs.get(2)), "m1"), 10)).contains("> 10");
    }

    private static ClusterDisruption.Run run(String strategy, int rep, Optional<Double> ttr, TcpCounters tcp, long held, long notDelivered,
                                             long dropped, List<Double> steps) {
        return new ClusterDisruption.Run(strategy, rep, ttr.map(t -> t / 2), ttr, 1.0, 3.0, tcp, held, notDelivered, dropped, 10,
                List.of(List.of("m1", "m2")), List.of("m1", "m2"), steps, strategy.equals("held")
                        ? List.of(new ClusterDisruption.MemberTimes("m1", "ws", 100, 100, 0.8, 0.9), new ClusterDisruption.MemberTimes("m2", "ws", 10, 100, 0.3, 1.0))
                        : List.of(new ClusterDisruption.MemberTimes("m1", "ws", 100, 100, 1.9, 2.0), new ClusterDisruption.MemberTimes("m2", "ws", 10, 10, 0.3, 0.5)));
    }
}
