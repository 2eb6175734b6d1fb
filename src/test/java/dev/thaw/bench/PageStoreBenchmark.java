package dev.thaw.bench;

import dev.thaw.image.CheckpointImage;
import dev.thaw.image.Codec;
import dev.thaw.image.ImageWriter;
import dev.thaw.image.Manifest;
import dev.thaw.migration.RamBlock;
import dev.thaw.util.FileTrees;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * Page-store write and read throughput: pages per second (x 4 KiB for bytes). Run with
 * {@code ./thaw jmh PageStoreBenchmark}; results and conditions go to docs/benchmarks.md.
 *
 * <p>Content: {@code random} is incompressible and unique (like wsbench's region); {@code text}
 * compresses about 3x; {@code guest} mixes 45% zero pages, 5% duplicates, 25% text, 25% random.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class PageStoreBenchmark {
    static final int PAGES = 16_384; // 64 MiB

    @Param({"zstd", "lz4", "none"})
    public String codec;

    @Param({"random", "text", "guest"})
    public String content;

    @Param({"16"})
    public int groupPages;

    private byte[][] pages;
    private Path dir;
    private Path readImage;
    private CheckpointImage image;
    private int[] randomOrder;
    private int run;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        Random random = new Random(42);
        pages = new byte[PAGES][];
        byte[] words = "the quick brown fox jumps over a lazy dog while page frames migrate between hosts ".getBytes();
        for (int i = 0; i < PAGES; i++) {
            String kind = content.equals("guest") ? pick(random) : content;
            switch (kind) {
                case "zero" -> pages[i] = null;
                case "dup" -> pages[i] = i > 0 && pages[i - 1] != null ? pages[i - 1] : new byte[4096];
                case "random" -> {
                    pages[i] = new byte[4096];
                    random.nextBytes(pages[i]);
                }
                default -> {
                    pages[i] = new byte[4096];
                    for (int j = 0; j < 4096; j++) pages[i][j] = words[(j * 7 + random.nextInt(3) + i) % words.length];
                    pages[i][0] = (byte) i;
                    pages[i][1] = (byte) (i >> 8);
                }
            }
        }
        dir = Files.createTempDirectory("thaw-jmh-");
        readImage = dir.resolve("read");
        write(readImage);
        image = CheckpointImage.open(readImage);
        randomOrder = new int[PAGES];
        for (int i = 0; i < PAGES; i++) randomOrder[i] = i;
        for (int i = PAGES - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = randomOrder[i];
            randomOrder[i] = randomOrder[j];
            randomOrder[j] = t;
        }
    }

    private static String pick(Random random) {
        double r = random.nextDouble();
        return r < 0.45 ? "zero" : r < 0.50 ? "dup" : r < 0.75 ? "text" : "random";
    }

    private Manifest write(Path target) {
        try (ImageWriter w = ImageWriter.create(target, new ImageWriter.Options(Codec.parse(codec), 1, groupPages, null))) {
            w.configuration(new byte[8], "pc-i440fx-7.2", List.of());
            w.ramBlocks(2, 4, List.of(new RamBlock("pc.ram", PAGES * 4096L, 4096)));
            for (int i = 0; i < PAGES; i++) {
                if (pages[i] == null) w.zeroPage(0, i);
                else w.page(0, i, pages[i], 0);
            }
            w.deviceState(new byte[] {4}, null);
            return w.commit(new Manifest.Source("7.2", null, List.of(), null), "jmh");
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        image.close();
        FileTrees.deleteQuietly(dir);
    }

    /** Save path: SHA-256 per page, dedup lookup, compression, pack and metadata writes with fsync. */
    @Benchmark
    @OperationsPerInvocation(PAGES)
    public Manifest writePages() {
        Path target = dir.resolve("w" + run++);
        Manifest m = write(target);
        FileTrees.deleteQuietly(target);
        return m;
    }

    /** Eager-restore path: every page in address order (each extent decompressed once). */
    @Benchmark
    @OperationsPerInvocation(PAGES)
    public void readSequential(Blackhole bh) {
        byte[] out = new byte[4096];
        for (int i = 0; i < PAGES; i++) bh.consume(image.readPage(0, i, out, 0));
    }

    /** Demand-fault path: pages in random order (mostly one extent read and decompressed per page). */
    @Benchmark
    @OperationsPerInvocation(PAGES)
    public void readRandom(Blackhole bh) {
        byte[] out = new byte[4096];
        for (int i : randomOrder) bh.consume(image.readPage(0, i, out, 0));
    }
}
