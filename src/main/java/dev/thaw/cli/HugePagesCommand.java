package dev.thaw.cli;

import dev.thaw.host.HugePagePool;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "hugepages", mixinStandardHelpOptions = true,
        description = {"Show, reserve or release the kernel's persistent pool of 2 MiB pages for restores (root).",
                "A ws restore that puts guest RAM in 2 MiB pages (restore --guest-ram auto or hugetlb) takes them from",
                "this pool when it holds the whole guest, else surplus pages from the kernel. On a VM host with free-page",
                "reporting, memory freed goes back to the hypervisor and costs about 6 ms per 2 MiB to touch again;",
                "pool pages are never freed, so 'reserve' touches them once and every restore finds them ready.",
                "The pool's memory is kept from everything else on the host until 'release'."})
final class HugePagesCommand implements Callable<Integer> {
    @Parameters(index = "0", arity = "0..1", defaultValue = "status", paramLabel = "ACTION",
            description = "status (default), reserve (with --mib) or release (the pool to 0 pages).")
    String action;

    @Option(names = "--mib", description = "reserve: the pool's size at least, in MiB (rounded up to 2 MiB pages).")
    Long mib;

    @Option(names = "--json", description = "Print the result as one JSON object.")
    boolean json;

    record Report(String action, HugePagePool.State before, HugePagePool.State after, Long touchedPageCount, Double touchSeconds) {}

    @Override
    public Integer call() {
        HugePagePool.State before = HugePagePool.state().orElse(null);
        if (before == null) {
            System.err.println("thaw hugepages: this kernel has no 2 MiB hugetlb pages (/sys/kernel/mm/hugepages/hugepages-2048kB)");
            return 1;
        }
        Long touched = null;
        Double seconds = null;
        switch (action) {
            case "status" -> {
                if (mib != null) throw new IllegalArgumentException("--mib: expected only with reserve, actual with status");
            }
            case "reserve" -> {
                if (mib == null || mib <= 0) {
                    throw new IllegalArgumentException("reserve: expected --mib with a size > 0, actual " + (mib == null ? "none" : mib));
                }
                HugePagePool.Reserved r = HugePagePool.reserve(HugePagePool.pagesFor(mib << 20));
                touched = r.touchedPageCount();
                seconds = r.touchNanos() / 1e9;
                if (r.isShort()) {
                    System.err.printf("thaw hugepages: expected a pool of %d pages, actual %d: the kernel found no more free 2 MiB"
                            + " blocks (fragmented memory; reserve early after boot)%n", r.pageCountAsked(), r.pageCount());
                }
                if (!json) {
                    System.out.printf("reserved: %d -> %d pages; %d free pages touched in %.2f s%n", r.pageCountBefore(), r.pageCount(),
                            r.touchedPageCount(), r.touchNanos() / 1e9);
                }
            }
            case "release" -> {
                if (mib != null) throw new IllegalArgumentException("--mib: expected only with reserve, actual with release");
                HugePagePool.resize(0);
            }
            default -> throw new IllegalArgumentException("ACTION: expected status, reserve or release, actual '" + action + "'");
        }
        HugePagePool.State after = HugePagePool.state().orElseThrow();
        if (json) {
            System.out.println(Json.write(new Report(action, before, after, touched, seconds)));
        } else {
            System.out.println("2 MiB pool: " + after.describe());
        }
        return after.persistentPageCount() < (action.equals("reserve") ? HugePagePool.pagesFor(mib << 20) : 0) ? 1 : 0;
    }
}
