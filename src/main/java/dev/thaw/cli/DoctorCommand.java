package dev.thaw.cli;

import dev.thaw.host.HostDoctor;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "doctor", mixinStandardHelpOptions = true,
        description = {"Check (and set up) this host; probe KVM.",
                "Checks this host: QEMU >= 7.2, busybox-static, cpio, gcc, userfaultfd, and whether KVM",
                "really works (a probe guest must run; the verdict is cached). As root it installs missing",
                "Debian packages with apt-get; otherwise it prints the command to run."})
final class DoctorCommand implements Callable<Integer> {
    @Option(names = "--no-install", description = "Only report; install nothing.")
    boolean noInstall;

    @Option(names = "--json", description = "Print the report as one JSON object.")
    boolean json;

    @Override
    public Integer call() {
        HostDoctor.Report report = HostDoctor.examine(!noInstall, System.err);
        if (json) {
            System.out.println(Json.write(report));
        } else {
            System.out.println("thaw doctor: " + (report.ready() ? "this host is ready" : "this host is NOT ready"));
            System.out.print(report.render());
        }
        return report.ready() ? 0 : 1;
    }
}
