package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.restore.PostcopyRestore;
import dev.thaw.util.ThreadPriority;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

/** The one dispatch of restore methods, where it is pure: what reads Thaw's image, and whose tuning wins. */
class MethodRestoreTest {
    @Test
    void everyMethodButQemusOwnReadsThawsImage() {
        for (RestoreMethod m : RestoreMethod.values()) {
            assertThat(MethodRestore.readsImage(m)).as(m.label()).isEqualTo(m.thawMode().isPresent() || m == RestoreMethod.MAPPED_FILE);
        }
    }

    @Test
    void theCallersTuningComesFirstAndTheMethodsOwnChangeLast() {
        // As the demo's command line could: a busy pace of 10 MB/s and the background at normal priority.
        UnaryOperator<PostcopyRestore.Options> tune = o -> o.withPolicy(o.policy().withBusyBackgroundBytesPerSecond(10_000_000L))
                .withBackgroundPriority(ThreadPriority.Policy.NORMAL);
        PostcopyRestore.Options ws = PostcopyRestore.Options.ws("t", List.of(), List.of());
        PostcopyRestore.Options plain = MethodRestore.tuning(RestoreMethod.WS_TRACE, tune).apply(ws);
        assertThat(plain).as("Thaw's ws chooses its guest RAM as thaw restore does")
                .isEqualTo(tune.apply(ws).withGuestRam(PostcopyRestore.GuestRam.AUTO));
        PostcopyRestore.Options unpaced = MethodRestore.tuning(RestoreMethod.WS_TRACE_UNPACED, tune).apply(ws);
        assertThat(unpaced.policy().busyBackgroundBytesPerSecond()).as("the ablation: never paced, whatever the tuning").isZero();
        assertThat(unpaced.backgroundPriority()).as("the rest of the tuning stays").isEqualTo(ThreadPriority.Policy.NORMAL);
    }
}
