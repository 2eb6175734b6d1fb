package dev.thaw.cli;

import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code thaw} command line; {@code ./thaw} at the repository root builds and runs it. */
@Command(name = "thaw", mixinStandardHelpOptions = true, versionProvider = ThawCli.Version.class,
        description = "Saves running QEMU VMs and restores them to a usable state fast.",
        footer = {"", "The launcher also takes: ./thaw test [MAVEN ARGS] (the test suite), ./thaw jmh [JMH ARGS] (micro-benchmarks)."})
public final class ThawCli {
    /**
     * Every subcommand, in the order usage help lists them. In a holder: its class literals load every command's class and
     * picocli's, which a restore handed to {@code thaw serve} from {@link #main} does not need.
     */
    private static final class Subcommands {
        static final List<Class<?>> ALL = List.of(DemoCommand.class, BootCommand.class, ClusterCommand.class, SaveCommand.class,
                InspectCommand.class, RmCommand.class, GcCommand.class, PushCommand.class, PullCommand.class, RestoreCommand.class,
                ServeCommand.class, WsCommand.class, TimelineCommand.class, BenchCommand.class, DoctorCommand.class, HugePagesCommand.class,
                GuestCommand.class, ZookeeperCommand.class, CommandLine.HelpCommand.class);
    }

    static List<Class<?>> subcommands() {
        return Subcommands.ALL;
    }

    public static void main(String[] args) {
        // A restore for thaw serve goes there before anything of a restore is loaded here.
        java.util.Optional<java.nio.file.Path> server = ServeClient.serverOf(args, System.getenv());
        if (server.isPresent()) System.exit(ServeClient.run(server.get(), args, System.out, System.err));
        // The launcher's AOT recording (the demo) archives every command's classes, which the other commands then load from it.
        if (Boolean.getBoolean("thaw.aotRecord")) withEverySubcommand();
        if (args.length > 0) Preload.start(args[0]);
        System.exit(commandLine(args).execute(args));
    }

    /** The command line with every subcommand (usage help, tests that walk them all). */
    static CommandLine commandLine() {
        return commandLine(new String[0]);
    }

    /**
     * The command line as {@code main} runs it for {@code args}: only the subcommand {@code args} name is built, since picocli
     * reflects over every option of every command it is given (0.16-0.19 s of {@code restore --help} in a fresh JVM without the
     * AOT cache here); without one (usage, --version, a mistyped name) every subcommand is. A failed command prints its full
     * name and the error's message, and exits 1.
     */
    static CommandLine commandLine(String[] args) {
        List<Class<?>> named = args.length == 0 ? List.of()
                : subcommands().stream().filter(c -> c != CommandLine.HelpCommand.class && c.getAnnotation(Command.class).name().equals(args[0])).toList();
        return withSubcommands(named.isEmpty() ? subcommands() : named)
                .setExecutionExceptionHandler((e, cmd, parsed) -> {
                    cmd.getErr().println(cmd.getCommandSpec().qualifiedName() + ": " + e.getMessage());
                    if (Boolean.getBoolean("thaw.trace")) e.printStackTrace(cmd.getErr());
                    return 1;
                });
    }

    /** The bare command line (picocli's own handlers) with every subcommand. */
    static CommandLine withEverySubcommand() {
        return withSubcommands(subcommands());
    }

    private static CommandLine withSubcommands(List<Class<?>> subcommands) {
        CommandLine commandLine = new CommandLine(new ThawCli());
        for (Class<?> c : subcommands) commandLine.addSubcommand(c);
        return commandLine;
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = ThawCli.class.getPackage().getImplementationVersion();
            return new String[] {"thaw " + (v == null ? "(development build)" : v)};
        }
    }
}
