package dev.thaw.save;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.image.DiskBlockIndex;
import dev.thaw.image.Qcow2Chain;
import dev.thaw.util.ExternalCommand;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * The files of a qcow2 disk's chain a save can take pages from, and where in each file its own guest data lies, as QEMU
 * 7.2's {@code qemu-img} reports them ({@code info --backing-chain}, {@code map}; with {@code -U}, since the guest's QEMU
 * holds the top file's lock while the index is built). A layer is indexed only where Thaw's own walk of the headers
 * ({@link Qcow2Chain}, which the restore repeats) names the same file as qemu-img, and only when its clusters hold the
 * guest's bytes as they are: a qcow2 file that is encrypted or keeps its data in an external data file is not indexed,
 * nor is anything below it; compressed clusters have no file offset in the map and are left out.
 */
public final class DiskLayers {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Duration QEMU_IMG_TIMEOUT = Duration.ofSeconds(60);

    /** Layer {@code layer} of the chain ({@link Qcow2Chain}'s numbering), a file of format {@code format} (raw or qcow2). */
    public record Layer(int layer, Path file, String format) {}

    private DiskLayers() {}

    /** The indexable layers of the chain whose top is the qcow2 file {@code top}; {@code warn} is told why the rest is not. */
    public static List<Layer> of(Path top, Consumer<String> warn) throws IOException {
        String info = ExternalCommand.check(List.of("qemu-img", "info", "-U", "--backing-chain", "--output=json", "-f", "qcow2", top.toString()),
                QEMU_IMG_TIMEOUT);
        return indexable(Qcow2Chain.of(top), JSON.readTree(info), warn);
    }

    /** Pure: the layers of {@code walked} (Thaw's walk) that {@code info} ({@code qemu-img info --backing-chain}'s JSON) agrees on. */
    static List<Layer> indexable(List<Path> walked, JsonNode info, Consumer<String> warn) {
        List<Layer> layers = new ArrayList<>();
        for (int i = 0; i < walked.size() && i < info.size(); i++) {
            JsonNode entry = info.get(i);
            Path named = Path.of(entry.path("filename").asText()).toAbsolutePath().normalize();
            if (!named.equals(walked.get(i))) {
                warn.accept("layer " + i + ": expected qemu-img to name " + walked.get(i) + " as the headers do, actual " + named
                        + ": it and the files below it are not indexed");
                break;
            }
            String format = entry.path("format").asText();
            if (format.equals("raw")) {
                layers.add(new Layer(i, named, format));
                break; // a raw file has no backing file
            }
            JsonNode specific = entry.path("format-specific").path("data");
            if (!format.equals("qcow2") || entry.path("encrypted").asBoolean(false) || specific.has("data-file") || specific.has("encrypt")) {
                warn.accept("layer " + i + " (" + named + "): expected a plain qcow2 or raw file, actual format " + format
                        + (entry.path("encrypted").asBoolean(false) ? ", encrypted" : "") + (specific.has("data-file") ? ", external data file" : "")
                        + ": it and the files below it are not indexed");
                break;
            }
            layers.add(new Layer(i, named, format));
        }
        return List.copyOf(layers);
    }

    /** The file ranges of the qcow2 file's own uncompressed data clusters, from {@code qemu-img map} of the file. */
    public static List<DiskBlockIndex.Extent> dataExtents(Path qcow2) throws IOException {
        String map = ExternalCommand.check(List.of("qemu-img", "map", "-U", "--output=json", "-f", "qcow2", qcow2.toString()), QEMU_IMG_TIMEOUT);
        return dataExtents(JSON.readTree(map));
    }

    /**
     * Pure: from {@code qemu-img map --output=json}, the ranges the file itself holds ({@code depth} 0), with data ({@code
     * data}, not {@code zero}: a zero cluster's bytes in the file are not what the guest reads) at a file {@code offset}
     * (absent for compressed and encrypted clusters), trimmed to the whole 4 KiB blocks of the guest's; a range whose guest
     * and file offsets are not equally aligned (subclusters) is left out.
     */
    static List<DiskBlockIndex.Extent> dataExtents(JsonNode map) {
        int b = DiskBlockIndex.BLOCK_BYTES;
        List<DiskBlockIndex.Extent> out = new ArrayList<>();
        for (JsonNode e : map) {
            if (e.path("depth").asInt(-1) != 0 || !e.path("data").asBoolean(false) || e.path("zero").asBoolean(true) || !e.has("offset")) continue;
            long start = e.path("start").asLong(-1);
            long length = e.path("length").asLong(-1);
            long offset = e.path("offset").asLong(-1);
            if (start < 0 || length <= 0 || offset < 0) continue;
            long skip = Math.ceilDiv(start, b) * b - start;
            long blocks = (length - skip) / b;
            if (blocks <= 0 || (offset + skip) % b != 0) continue;
            out.add(new DiskBlockIndex.Extent(offset + skip, blocks * b));
        }
        return List.copyOf(out);
    }
}
