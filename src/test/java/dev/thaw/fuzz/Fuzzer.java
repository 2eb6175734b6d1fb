package dev.thaw.fuzz;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A seeded mutational fuzzer with outcome feedback: an input that ends somewhere new (a new exception type thrown from
 * a new line of Thaw's code) joins the corpus and is mutated further, so that cases get past the first checks without
 * instrumenting the code (no coverage-guided Java fuzzer is available to this build). Each case runs on a worker thread under a time bound and
 * an allocation bound; what it throws is compared with the target's contract.
 *
 * <p>Deterministic for a seed and a case count: case {@code i} draws from {@code Random(seed, i)} and the corpus grows
 * in case order, so {@code -Dthaw.seed=S -Dthaw.fuzz.cases=N} replays a run; each finding's input is also written
 * to a file.
 */
public final class Fuzzer {
    /** A case allocating more than this for inputs of at most a megabyte is amplifying a length it read. */
    static final long ALLOCATION_LIMIT_BYTES = 512L << 20;
    private static final int MAX_CORPUS = 512;
    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();

    private Fuzzer() {}

    /** At most {@code cases} cases and at most {@code time}; each case at most {@code perCase}. */
    public record Budget(long cases, Duration time, Duration perCase) {}

    /** An outcome outside the contract, the first case that showed it, and where its input was saved. */
    public record Finding(String signature, long caseNumber, Path input, String detail) {}

    /**
     * @param outcomes how many cases ended each way (returned, or an exception type and the line of Thaw's code that threw
     *                 it): the distinct ones are a rough measure of the code reached
     */
    public record Report(String target, long seed, long cases, int corpus, Map<String, Long> outcomes, List<Finding> findings,
                         Duration elapsed) {
        public String summary() {
            return String.format("fuzz %-22s %8d cases in %5.1f s, %3d outcomes, corpus %3d, %d findings", target, cases,
                    elapsed.toMillis() / 1e3, outcomes.size(), corpus, findings.size());
        }
    }

    private sealed interface Outcome {
        record Returned(String where) implements Outcome {}

        record Threw(Throwable error, long allocated) implements Outcome {}

        record Hung() implements Outcome {}

        record Allocated(long bytes) implements Outcome {}
    }

    public static Report run(FuzzTarget target, long seed, Budget budget, Path findingsDir) {
        long started = System.nanoTime();
        long deadline = started + budget.time().toNanos();
        List<byte[]> corpus = new ArrayList<>(target.seeds());
        Map<String, Long> outcomes = new java.util.TreeMap<>();
        Map<String, Finding> findings = new LinkedHashMap<>();
        ExecutorService worker = newWorker(target.name());
        long cases = 0;
        try {
            for (int i = 0; i < target.seeds().size(); i++) {
                Outcome o = execute(worker, target, target.seeds().get(i), budget.perCase());
                if (!(o instanceof Outcome.Returned)) {
                    throw new IllegalStateException("fuzz target " + target.name() + ": seed " + i + " must run cleanly, actual " + describe(o));
                }
            }
            while (cases < budget.cases() && System.nanoTime() < deadline) {
                Random random = new Random(seed * 0x9E3779B97F4A7C15L + cases);
                byte[] input = target.mutation().mutate(corpus.get(random.nextInt(corpus.size())), corpus, random);
                Outcome o = execute(worker, target, input, budget.perCase());
                if (o instanceof Outcome.Hung) worker = newWorker(target.name()); // the stuck thread is a daemon; leave it
                String signature = signature(o, target);
                boolean finding = !(o instanceof Outcome.Returned) && !(o instanceof Outcome.Threw t && target.isExpected(t.error())
                        && t.error().getMessage() != null && !t.error().getMessage().isBlank());
                if (outcomes.merge(signature, 1L, Long::sum) == 1 && corpus.size() < MAX_CORPUS && !finding) corpus.add(input);
                if (finding && !findings.containsKey(signature)) {
                    findings.put(signature, new Finding(signature, cases, save(findingsDir, target.name(), seed, cases, input), describe(o)));
                }
                cases++;
            }
        } finally {
            worker.shutdownNow();
        }
        return new Report(target.name(), seed, cases, corpus.size(), outcomes, List.copyOf(findings.values()),
                Duration.ofNanos(System.nanoTime() - started));
    }

    private static ExecutorService newWorker(String name) {
        return Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "fuzz-" + name);
            t.setDaemon(true);
            return t;
        });
    }

    private static Outcome execute(ExecutorService worker, FuzzTarget target, byte[] input, Duration bound) {
        Future<Outcome> f = worker.submit(() -> {
            long before = THREADS.getCurrentThreadAllocatedBytes();
            try {
                target.body().run(input);
            } catch (Throwable t) { // OutOfMemoryError and StackOverflowError included: they are findings too
                return new Outcome.Threw(t, THREADS.getCurrentThreadAllocatedBytes() - before);
            }
            long allocated = THREADS.getCurrentThreadAllocatedBytes() - before;
            return allocated > ALLOCATION_LIMIT_BYTES ? new Outcome.Allocated(allocated) : new Outcome.Returned("");
        });
        try {
            Outcome o = f.get(bound.toMillis(), TimeUnit.MILLISECONDS);
            if (o instanceof Outcome.Threw t && t.allocated() > ALLOCATION_LIMIT_BYTES) return new Outcome.Allocated(t.allocated());
            return o;
        } catch (TimeoutException e) {
            f.cancel(true);
            return new Outcome.Hung();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("fuzzing interrupted", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("fuzz worker failed", e.getCause());
        }
    }

    /** Where an outcome happened: the exception type and the innermost line of Thaw's product code that threw it. */
    private static String signature(Outcome o, FuzzTarget target) {
        return switch (o) {
            case Outcome.Returned r -> "returned";
            case Outcome.Hung h -> "hang";
            case Outcome.Allocated a -> "allocation";
            case Outcome.Threw t -> t.error().getClass().getName() + " at " + thawFrame(t.error()) + (t.error().getCause() == null ? ""
                    : " caused by " + t.error().getCause().getClass().getName() + " at " + thawFrame(t.error().getCause()));
        };
    }

    private static String thawFrame(Throwable t) {
        for (StackTraceElement e : t.getStackTrace()) {
            if (e.getClassName().startsWith("dev.thaw.") && !e.getClassName().startsWith("dev.thaw.fuzz.")) {
                return e.getClassName() + ":" + e.getLineNumber();
            }
        }
        return t.getStackTrace().length > 0 ? t.getStackTrace()[0].toString() : "?";
    }

    private static String describe(Outcome o) {
        return switch (o) {
            case Outcome.Returned r -> "returned normally";
            case Outcome.Hung h -> "no result within the case's time bound (a hang)";
            case Outcome.Allocated a -> "allocated " + (a.bytes() >> 20) + " MiB for one input";
            case Outcome.Threw t -> {
                StringWriter s = new StringWriter();
                t.error().printStackTrace(new PrintWriter(s));
                String trace = s.toString();
                yield trace.lines().limit(12).reduce((a, b) -> a + "\n" + b).orElse(trace);
            }
        };
    }

    private static Path save(Path dir, String target, long seed, long caseNumber, byte[] input) {
        try {
            Files.createDirectories(dir);
            Path file = dir.resolve(target.replace('/', '-') + "-seed" + seed + "-case" + caseNumber + ".bin");
            Files.write(file, input);
            return file;
        } catch (IOException e) {
            return null; // the finding is still reported, with its seed and case number
        }
    }
}
