package dev.thaw.image;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The hidden directories a save writes its image under, {@code .NAME.partial-PID-RANDOM}, renamed
 * into place on commit; and the removal of those whose save died (a SIGKILLed Thaw runs no cleanup).
 */
final class PartialImages {
    private static final Logger log = LoggerFactory.getLogger(PartialImages.class);
    private static final Pattern NAME = Pattern.compile("\\..+\\.partial-(\\d+)-.*");
    // Linux derives a process's start time from the boot time in whole seconds.
    private static final Duration START_TIME_SLACK = Duration.ofSeconds(2);

    private PartialImages() {}

    /** The prefix of this process's temporary directory for {@code target}. */
    static String prefix(Path target) {
        return "." + target.getFileName() + ".partial-" + ProcessHandle.current().pid() + "-";
    }

    /**
     * Removes the partial images in {@code directory} whose save is gone: no live process has their
     * pid, or the one that has it started after the directory was made (the pid was reused).
     */
    static List<Path> removeAbandoned(Path directory) {
        List<Path> removed = new ArrayList<>();
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(directory, ".*.partial-*")) {
            for (Path entry : entries) {
                Matcher m = NAME.matcher(entry.getFileName().toString());
                if (!m.matches()) continue;
                BasicFileAttributes attributes = Files.readAttributes(entry, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                long pid;
                try {
                    pid = Long.parseLong(m.group(1));
                } catch (NumberFormatException e) {
                    continue; // not a pid Thaw wrote
                }
                if (attributes.isDirectory() && abandoned(pid, attributes.creationTime().toInstant())) {
                    log.warn("removing {}: the partial image of a save that died (no process {} older than it runs)", entry, pid);
                    dev.thaw.util.FileTrees.deleteQuietly(entry);
                    removed.add(entry);
                }
            }
        } catch (IOException e) {
            log.warn("cannot look for partial images of dead saves in {}: {}", directory, e.toString());
        }
        return removed;
    }

    /** Whether no live process with {@code pid} can have made something at {@code created}. */
    static boolean abandoned(long pid, Instant created) {
        Optional<ProcessHandle> process = ProcessHandle.of(pid).filter(ProcessHandle::isAlive);
        if (process.isEmpty()) return true;
        Optional<Instant> start = process.get().info().startInstant();
        return start.isPresent() && start.get().isAfter(created.plus(START_TIME_SLACK));
    }
}
