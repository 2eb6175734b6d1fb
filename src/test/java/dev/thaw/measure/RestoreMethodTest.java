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
        assertThat(RestoreMethod.defaults()).doesNotContain(RestoreMethod.THAW_LAZY_ADDRESS_ORDER).contains(RestoreMethod.WS_TRACE_MAPPED).hasSize(9);
        assertThat(RestoreMethod.WS_TRACE_MAPPED.thawMode()).contains(Restorer.Mode.MAPPED);
        assertThat(RestoreMethod.WS_TRACE_MAPPED.estimate()).isEqualTo(RestoreMethod.WS_TRACE);
        assertThat(RestoreMethod.values()).filteredOn(RestoreMethod::mapsRamFile)
                .containsExactlyInAnyOrder(RestoreMethod.MAPPED_FILE, RestoreMethod.WS_DIRTY_MAPPED, RestoreMethod.WS_TRACE_MAPPED);
    }

    @Test
    void theDemoNamesThawsMethodsByTheirMode() {
        assertThat(RestoreMethod.THAW_EAGER.shortName()).isEqualTo(Restorer.Mode.EAGER.label());
        assertThat(RestoreMethod.THAW_LAZY.shortName()).isEqualTo(Restorer.Mode.LAZY.label());
        assertThat(RestoreMethod.WS_TRACE.shortName()).as("the demo's ws: the image's dirty,trace estimate").isEqualTo(Restorer.Mode.WS.label());
        assertThat(RestoreMethod.WS_TRACE_MAPPED.shortName()).as("the image's dirty,trace estimate, mapped").isEqualTo(Restorer.Mode.MAPPED.label());
        assertThat(RestoreMethod.MAPPED_FILE.shortName()).isEqualTo("mapped-file");
    }

    @Test
    void anUnknownKeyNamesTheKnownOnes() {
        assertThatThrownBy(() -> RestoreMethod.parse("thaw-lazzy")).hasMessageContaining("expected one of")
                .hasMessageContaining("ws-trace").hasMessageContaining("actual 'thaw-lazzy'");
    }
}
