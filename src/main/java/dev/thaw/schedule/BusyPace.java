package dev.thaw.schedule;

/**
 * The background's pace by what the guest does with its vCPUs: unpaced while they idle, at most {@code bytesPerSecond} while
 * they compute. A computing guest loses time to a full-speed background even with the background at idle priority: at 4 GiB
 * the hypervisor under this host stole 2.0-5.7% of a restore from a VM whose other core streamed, against 0.1-0.4% with the
 * background paced to 16 MB/s, and the guest's stall TTR followed it (docs/benchmarks.md, tenth session). An idle guest loses
 * nothing, and gets its memory at full speed.
 *
 * <p>Busy or idle is decided per window of at least {@link #WINDOW_NANOS} from the vCPUs' time on a CPU; the guest counts as
 * busy until the second window says otherwise (a restored guest usually resumes work; the first window may begin before its
 * vCPU does, and is not judged). While busy, bytes are allowed at the pace,
 * up to a burst of one {@link #BURST_BYTES}. Pure: the caller feeds it the run time and the bytes handed out.
 */
public final class BusyPace {
    /** How long a window of vCPU run time is: 10 scheduler ticks. */
    public static final long WINDOW_NANOS = 100_000_000L;
    /** A vCPU on a CPU for at least this share of a window is busy (summed over vCPUs, against their count). */
    public static final double BUSY_SHARE = 0.5;
    /** What a busy guest's pace may send at once after a quiet spell: one default chunk. */
    static final long BURST_BYTES = 128 << 10;

    private final long bytesPerSecond;
    private long windowStartNanos = Long.MIN_VALUE;
    private long windowStartRunNanos;
    private boolean busy = true;
    private boolean firstWindow = true;
    private double allowedBytes;
    private long accruedAtNanos = Long.MIN_VALUE;
    private long bytesSeen;
    private long busyWindows;
    private long idleWindows;

    /** @param bytesPerSecond the pace while the guest computes; > 0 */
    public BusyPace(long bytesPerSecond) {
        if (bytesPerSecond <= 0) throw new IllegalArgumentException("busy pace: expected > 0 bytes/s, actual " + bytesPerSecond);
        this.bytesPerSecond = bytesPerSecond;
    }

    /**
     * The vCPUs' time on a CPU so far (summed), read at {@code nowNanos}; a window ends once {@link #WINDOW_NANOS} passed and
     * decides busy or idle from then on.
     */
    public void vcpuRunTime(long nowNanos, long runNanos, int vcpuCount) {
        if (vcpuCount < 1) throw new IllegalArgumentException("vCPUs: expected >= 1, actual " + vcpuCount);
        accrue(nowNanos);
        if (windowStartNanos == Long.MIN_VALUE) {
            windowStartNanos = nowNanos;
            windowStartRunNanos = runNanos;
            return;
        }
        long elapsed = nowNanos - windowStartNanos;
        if (elapsed < WINDOW_NANOS) return;
        double share = (double) (runNanos - windowStartRunNanos) / elapsed / vcpuCount;
        windowStartNanos = nowNanos;
        windowStartRunNanos = runNanos;
        if (firstWindow) {
            firstWindow = false;
            return;
        }
        boolean nowBusy = share >= BUSY_SHARE;
        if (nowBusy && !busy) allowedBytes = 0; // back to the pace from nothing: the idle spell had no allowance
        busy = nowBusy;
        if (busy) busyWindows++;
        else idleWindows++;
    }

    /**
     * How long the background must wait at {@code nowNanos}, given every paced background byte handed out so far: 0 while the
     * guest idles, or while a busy guest's pace allows more.
     */
    public long waitNanos(long nowNanos, long backgroundBytes) {
        accrue(nowNanos);
        if (busy) allowedBytes -= backgroundBytes - bytesSeen;
        bytesSeen = backgroundBytes;
        if (!busy || allowedBytes >= 0) return 0;
        return (long) Math.ceil(-allowedBytes * 1e9 / bytesPerSecond);
    }

    public boolean busy() {
        return busy;
    }

    /** Windows judged so far that found the guest busy, and idle (the first window is not judged). */
    public long busyWindows() {
        return busyWindows;
    }

    public long idleWindows() {
        return idleWindows;
    }

    private void accrue(long nowNanos) {
        if (accruedAtNanos != Long.MIN_VALUE && busy && nowNanos > accruedAtNanos) {
            allowedBytes = Math.min(BURST_BYTES, allowedBytes + bytesPerSecond * ((nowNanos - accruedAtNanos) / 1e9));
        }
        accruedAtNanos = Math.max(nowNanos, accruedAtNanos);
    }
}
