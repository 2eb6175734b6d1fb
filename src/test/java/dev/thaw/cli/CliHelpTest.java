package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;

import java.lang.reflect.AccessibleObject;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * picocli formats every help text with {@link String#format}: a bare {@code %} (say "30% of") makes it print a warning on every
 * {@code --help} and show the text unformatted. Every text as written in every command's annotations (mixins and option groups
 * included) must be a valid format string.
 */
class CliHelpTest {
    @Test
    void everyHelpTextOfEveryCommandIsAValidFormatString() {
        List<String> checked = new ArrayList<>();
        Set<Class<?>> seen = new HashSet<>();
        visit(ThawCli.commandLine(), checked, seen);
        assertThat(checked).as("texts checked").hasSizeGreaterThan(100);
    }

    /** main builds only the command named (picocli's model of all of them slowed every start); anything else gets all. */
    @Test
    void onlyTheNamedCommandIsBuiltAndEverythingElseGetsThemAll() {
        int all = ThawCli.subcommands().size();
        assertThat(ThawCli.commandLine(new String[] {"restore", "IMAGE"}).getSubcommands().keySet()).containsExactly("restore");
        assertThat(ThawCli.commandLine(new String[] {"cluster", "save"}).getSubcommands().get("cluster").getSubcommands()).containsKey("save");
        for (String[] args : List.of(new String[0], new String[] {"--version"}, new String[] {"help", "restore"}, new String[] {"restor"})) {
            assertThat(ThawCli.commandLine(args).getSubcommands()).as(String.join(" ", args)).hasSize(all);
        }
        assertThat(ThawCli.commandLine(new String[] {"help", "restore"}).execute("help", "restore")).as("help on one command").isZero();
    }

    private static void visit(CommandLine cmd, List<String> checked, Set<Class<?>> seen) {
        Object user = cmd.getCommandSpec().userObject();
        if (user != null) visitClass(user.getClass(), cmd.getCommandSpec().qualifiedName(), checked, seen);
        for (CommandLine sub : cmd.getSubcommands().values()) visit(sub, checked, seen);
    }

    private static void visitClass(Class<?> type, String command, List<String> checked, Set<Class<?>> seen) {
        for (Class<?> c = type; c != null && c != Object.class; c = c.getSuperclass()) {
            if (!seen.add(c)) continue;
            Command annotation = c.getAnnotation(Command.class);
            if (annotation != null) {
                check(command, c.getSimpleName(), annotation.description(), checked);
                check(command, c.getSimpleName(), annotation.header(), checked);
                check(command, c.getSimpleName(), annotation.footer(), checked);
            }
            List<AccessibleObject> members = new ArrayList<>(List.of(c.getDeclaredFields()));
            members.addAll(List.of(c.getDeclaredMethods()));
            for (AccessibleObject m : members) {
                Option option = m.getAnnotation(Option.class);
                if (option != null) check(command, String.join("/", option.names()), option.description(), checked);
                Parameters parameters = m.getAnnotation(Parameters.class);
                if (parameters != null) check(command, parameters.paramLabel(), parameters.description(), checked);
                // Mixins and argument groups are classes of their own, their fields' types.
                if (m instanceof Field f && (f.isAnnotationPresent(CommandLine.Mixin.class) || f.isAnnotationPresent(CommandLine.ArgGroup.class))) {
                    visitClass(f.getType(), command, checked, seen);
                }
            }
        }
    }

    private static void check(String command, String where, String[] texts, List<String> checked) {
        for (String text : texts) {
            assertThatCode(() -> String.format(text)).as("%s %s: help text %s", command, where, text).doesNotThrowAnyException();
            checked.add(text);
        }
    }
}
