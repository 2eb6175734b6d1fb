package dev.thaw.cluster.checkpoint;

import dev.thaw.fuzz.FuzzTarget;
import dev.thaw.fuzz.JsonMutator;
import dev.thaw.fuzz.Mutator;
import dev.thaw.image.ImageException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

/**
 * What a cluster restore reads that it did not write in this run: the checkpoint's frames file body ({@link FrameLog#decode}) and
 * its manifest's JSON ({@link ClusterManifest#parse}), each as the project's own writer makes it, mutated.
 */
public final class CheckpointFuzzTargets {
    private static final List<String> MEMBERS = List.of("m1", "m2", "m3");
    private static final Path FILE = Path.of("fuzz", "cluster");

    private CheckpointFuzzTargets() {}

    public static FuzzTarget frames() {
        List<dev.thaw.cluster.net.Frame> two = ClusterManifestTest.frames();
        byte[] seed = FrameLog.encode(two, MEMBERS);
        byte[] empty = FrameLog.encode(List.of(), MEMBERS);
        return new FuzzTarget("cluster-frames", List.of(seed, empty), Mutator::mutate, input -> {
            List<dev.thaw.cluster.net.Frame> frames = FrameLog.decode(FILE, input, MEMBERS);
            // What the restore does with them: the graph's input, every frame between two members.
            dev.thaw.cluster.net.Frame.summarize(frames);
        }, List.of(ImageException.Corrupt.class));
    }

    public static FuzzTarget manifest(Path work) {
        ClusterManifest m = ClusterManifestTest.manifestIn(work);
        byte[] seed;
        try {
            seed = new com.fasterxml.jackson.databind.ObjectMapper().findAndRegisterModules().writerWithDefaultPrettyPrinter().writeValueAsBytes(m);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        return new FuzzTarget("cluster-manifest", List.of(seed, new String(seed, StandardCharsets.UTF_8).replace("  ", " ").getBytes(StandardCharsets.UTF_8)),
                JsonMutator::mutate, input -> {
                    ClusterManifest read = ClusterManifest.parse(FILE.resolve(ClusterManifest.FILE), input);
                    read.memberNames();
                    read.id();
                    read.traffic().forEach(dev.thaw.cluster.net.PairRecord::traffic);
                }, List.of(ImageException.Corrupt.class, ImageException.UnsupportedVersion.class));
    }
}
