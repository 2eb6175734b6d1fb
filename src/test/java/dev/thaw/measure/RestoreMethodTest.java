package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.restore.Restorer;
import org.junit.jupiter.api.Test;

/** The one vocabulary of restore methods: its names on the command line and in the tables, and Thaw's modes. */
class RestoreMethodTest {
    @Test
    void everyKeyParsesBackAndThawsMethodsMapToTheirMode() {
        for (RestoreMethod m : RestoreMethod.values()) {
            assertThat(RestoreMethod.parse(m.key())).isEqualTo(m);
            assertThat(m.thawMode().isPresent()).as(m.label()).isEqualTo(m.label().startsWith("Thaw"));
        }
        assertThat(RestoreMethod.WS_LEARNED.thawMode()).contains(Restorer.Mode.WS);
        assertThat(RestoreMethod.THAW_LAZY_ADDRESS_ORDER.thawMode()).contains(Restorer.Mode.LAZY);
        assertThat(RestoreMethod.defaults()).doesNotContain(RestoreMethod.THAW_LAZY_ADDRESS_ORDER).hasSize(8);
    }

    @Test
    void theDemoNamesThawsMethodsByTheirMode() {
        assertThat(RestoreMethod.THAW_EAGER.shortName()).isEqualTo(Restorer.Mode.EAGER.label());
        assertThat(RestoreMethod.THAW_LAZY.shortName()).isEqualTo(Restorer.Mode.LAZY.label());
        assertThat(RestoreMethod.WS_TRACE.shortName()).as("the demo's ws: the image's dirty,trace estimate").isEqualTo(Restorer.Mode.WS.label());
        assertThat(RestoreMethod.MAPPED_FILE.shortName()).isEqualTo("mapped");
    }

    @Test
    void anUnknownKeyNamesTheKnownOnes() {
        assertThatThrownBy(() -> RestoreMethod.parse("thaw-lazzy")).hasMessageContaining("expected one of")
                .hasMessageContaining("ws-trace").hasMessageContaining("actual 'thaw-lazzy'");
    }
}
