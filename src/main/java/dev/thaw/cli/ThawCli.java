package dev.thaw.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code thaw} command line; {@code ./thaw} at the repository root builds and runs it. */
@Command(name = "thaw", mixinStandardHelpOptions = true, versionProvider = ThawCli.Version.class,
        description = "Saves running QEMU VMs and restores them to a usable state fast.",
        subcommands = {DemoCommand.class, BootCommand.class, ClusterCommand.class, SaveCommand.class, InspectCommand.class, RmCommand.class, GcCommand.class, PushCommand.class, PullCommand.class, RestoreCommand.class, WsCommand.class, TimelineCommand.class, BenchCommand.class,
                DoctorCommand.class, HugePagesCommand.class, GuestCommand.class, ZookeeperCommand.class, CommandLine.HelpCommand.class},
        footer = {"", "The launcher also takes: ./thaw test [MAVEN ARGS] (the test suite), ./thaw jmh [JMH ARGS] (micro-benchmarks)."})
public final class ThawCli {
    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The command line as {@code main} runs it: a failed command prints its full name and the error's message, and exits 1. */
    static CommandLine commandLine() {
        return new CommandLine(new ThawCli())
                .setExecutionExceptionHandler((e, cmd, parsed) -> {
                    cmd.getErr().println(cmd.getCommandSpec().qualifiedName() + ": " + e.getMessage());
                    if (Boolean.getBoolean("thaw.trace")) e.printStackTrace(cmd.getErr());
                    return 1;
                });
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = ThawCli.class.getPackage().getImplementationVersion();
            return new String[] {"thaw " + (v == null ? "(development build)" : v)};
        }
    }
}
