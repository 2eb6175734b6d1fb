package dev.thaw.cli;

import dev.thaw.host.HostDoctor;
import dev.thaw.host.PageTouchProbe;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "doctor", mixinStandardHelpOptions = true,
        description = {"Check (and set up) this host; probe KVM.",
                "Checks this host: QEMU >= 7.2, busybox-static, cpio, gcc, userfaultfd, and whether KVM",
                "really works (a probe guest must run; the verdict is cached). As root it installs missing",
                "Debian packages with apt-get; otherwise it prints the command to run. It also times the first",
                "touch of a 4 KiB page against a 2 MiB one (some hypervisors charge each 4 KiB page)."})
final class DoctorCommand implements Callable<Integer> {
    /** 64 MiB of each kind: about 0.15 s of 4 KiB touches where they trap (16,384 pages at 9 us). */
    private static final long PROBE_BYTES = 64L << 20;

    @Option(names = "--no-install", description = "Only report; install nothing.")
    boolean noInstall;

    @Option(names = "--json", description = "Print the report as one JSON object.")
    boolean json;

    @Override
    public Integer call() {
        HostDoctor.Report report = HostDoctor.examine(!noInstall, System.err);
        // What the host charges for a 4 KiB page's first touch: on some hypervisors a restore's 4 KiB guest RAM pays it per page.
        PageTouchProbe.Result pages = PageTouchProbe.measure(PROBE_BYTES);
        PageTouchProbe.remember(pages); // restores choosing their guest RAM read it instead of probing
        if (json) {
            com.fasterxml.jackson.databind.node.ObjectNode out = Json.MAPPER.valueToTree(report);
            out.set("pageTouch", Json.MAPPER.valueToTree(pages));
            System.out.println(Json.write(out));
        } else {
            System.out.println("thaw doctor: " + (report.ready() ? "this host is ready" : "this host is NOT ready"));
            System.out.print(report.render());
            System.out.printf("  %-4s %-22s %s%n", "", "host page mapping", pages.describe());
            dev.thaw.host.HugePagePool.state().ifPresent(p -> System.out.printf("  %-4s %-22s %s%s%n", "", "2 MiB page pool", p.describe(),
                    p.persistentPageCount() == 0 ? " (thaw hugepages reserve --mib N keeps N MiB backed for ws restores)" : ""));
        }
        return report.ready() ? 0 : 1;
    }
}
