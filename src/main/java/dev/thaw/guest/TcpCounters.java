package dev.thaw.guest;

/**
 * A guest's TCP counters since its boot, as its agent reads them ({@code tcp ID ...}: {@code /proc/net/snmp}'s
 * {@code Tcp: RetransSegs} and {@code /proc/net/netstat}'s {@code TcpExt: TCPTimeouts}, {@code TCPLossProbes} and
 * {@code TCPSpuriousRTOs}): what a cluster restore costs its TCP connections. The counters of a restored guest go on from
 * those of its save, so the difference between a read before the save and one after the restore is what the save, the
 * restore and the time between the two reads cost.
 *
 * @param retransSegs   segments retransmitted (every kind of retransmission)
 * @param timeouts      retransmission timeouts (RTO expiries: the exponential backoff a lost segment to a peer that does not
 *                      answer starts)
 * @param lossProbes    tail loss probes sent
 * @param spuriousRtos  timeouts found spurious afterwards (F-RTO)
 */
public record TcpCounters(long retransSegs, long timeouts, long lossProbes, long spuriousRtos) {
    public static final TcpCounters ZERO = new TcpCounters(0, 0, 0, 0);
    private static final String[] NAMES = {"Tcp:RetransSegs", "TcpExt:TCPTimeouts", "TcpExt:TCPLossProbes", "TcpExt:TCPSpuriousRTOs"};

    /**
     * The agent's answer {@code tcp ID Tcp:RetransSegs=N TcpExt:TCPTimeouts=N TcpExt:TCPLossProbes=N TcpExt:TCPSpuriousRTOs=N},
     * each counter named and in this order.
     *
     * @throws IllegalArgumentException naming the word that is not as expected ({@code expected ... actual ...}); a counter the
     *                                  guest's kernel lacks (-1) too
     */
    public static TcpCounters parse(String answer) {
        String[] words = answer.strip().split(" ");
        if (words.length != 2 + NAMES.length || !words[0].equals("tcp")) {
            throw new IllegalArgumentException("tcp answer: expected 'tcp ID' and " + NAMES.length + " counters, actual '" + answer + "'");
        }
        long[] values = new long[NAMES.length];
        for (int i = 0; i < NAMES.length; i++) {
            String word = words[2 + i];
            String prefix = NAMES[i] + "=";
            if (!word.startsWith(prefix)) {
                throw new IllegalArgumentException("tcp answer, counter " + (i + 1) + ": expected " + prefix + "N, actual '" + word + "'");
            }
            try {
                values[i] = Long.parseLong(word.substring(prefix.length()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("tcp answer, " + NAMES[i] + ": expected a number, actual '" + word.substring(prefix.length()) + "'");
            }
            if (values[i] < 0) {
                throw new IllegalArgumentException("tcp answer, " + NAMES[i] + ": expected a count >= 0, actual " + values[i]
                        + " (the guest's kernel does not have it)");
            }
        }
        return new TcpCounters(values[0], values[1], values[2], values[3]);
    }

    /** What was counted since {@code earlier}. */
    public TcpCounters minus(TcpCounters earlier) {
        return new TcpCounters(retransSegs - earlier.retransSegs, timeouts - earlier.timeouts, lossProbes - earlier.lossProbes,
                spuriousRtos - earlier.spuriousRtos);
    }

    public TcpCounters plus(TcpCounters other) {
        return new TcpCounters(retransSegs + other.retransSegs, timeouts + other.timeouts, lossProbes + other.lossProbes,
                spuriousRtos + other.spuriousRtos);
    }
}
