package dev.thaw.guest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class TcpCountersTest {
    @Test
    void parsesTheAgentsAnswerAndSubtractsAnEarlierRead() {
        TcpCounters before = TcpCounters.parse("tcp 3 Tcp:RetransSegs=816 TcpExt:TCPTimeouts=5 TcpExt:TCPLossProbes=522 TcpExt:TCPSpuriousRTOs=1");
        assertThat(before).isEqualTo(new TcpCounters(816, 5, 522, 1));
        TcpCounters after = TcpCounters.parse("tcp 9 Tcp:RetransSegs=900 TcpExt:TCPTimeouts=8 TcpExt:TCPLossProbes=530 TcpExt:TCPSpuriousRTOs=1\n");
        assertThat(after.minus(before)).isEqualTo(new TcpCounters(84, 3, 8, 0));
        assertThat(after.minus(before).plus(before)).isEqualTo(after);
    }

    @Test
    void aMalformedAnswerSaysWhatAndWhere() {
        assertThatThrownBy(() -> TcpCounters.parse("tcp 3 Tcp:RetransSegs=1"))
                .hasMessageContaining("expected 'tcp ID' and 4 counters, actual 'tcp 3 Tcp:RetransSegs=1'");
        assertThatThrownBy(() -> TcpCounters.parse("pong 3 Tcp:RetransSegs=1 TcpExt:TCPTimeouts=0 TcpExt:TCPLossProbes=0 TcpExt:TCPSpuriousRTOs=0"))
                .hasMessageContaining("expected 'tcp ID'");
        assertThatThrownBy(() -> TcpCounters.parse("tcp 3 Tcp:RetransSegs=1 TcpExt:TCPLossProbes=0 TcpExt:TCPTimeouts=0 TcpExt:TCPSpuriousRTOs=0"))
                .hasMessageContaining("counter 2: expected TcpExt:TCPTimeouts=N, actual 'TcpExt:TCPLossProbes=0'");
        assertThatThrownBy(() -> TcpCounters.parse("tcp 3 Tcp:RetransSegs=x TcpExt:TCPTimeouts=0 TcpExt:TCPLossProbes=0 TcpExt:TCPSpuriousRTOs=0"))
                .hasMessageContaining("Tcp:RetransSegs: expected a number, actual 'x'");
        assertThatThrownBy(() -> TcpCounters.parse("tcp 3 Tcp:RetransSegs=1 TcpExt:TCPTimeouts=-1 TcpExt:TCPLossProbes=0 TcpExt:TCPSpuriousRTOs=0"))
                .hasMessageContaining("TcpExt:TCPTimeouts: expected a count >= 0, actual -1 (the guest's kernel does not have it)");
    }
}
