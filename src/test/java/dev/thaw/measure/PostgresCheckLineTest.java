package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.guest.PostgresGuest;
import org.junit.jupiter.api.Test;

/** The line {@code bench --app postgres --check-memory} compares between the source and each restored guest; without QEMU. */
class PostgresCheckLineTest {
    @Test
    void theLineNamesTheRowsAndAmchecksVerdictAndGivesBackItsLargestId() {
        PostgresLoad.Rows rows = new PostgresLoad.Rows(1516, 123_456_789_012L, "0123456789abcdef0123456789abcdef");
        String passed = PostgresLoad.checkLine(rows, new PostgresGuest.Amcheck(0, "pg_amcheck: checking heap table ..."));
        assertThat(passed).isEqualTo("1516 rows up to id 123456789012, md5 0123456789abcdef0123456789abcdef; pg_amcheck passed");
        assertThat(PostgresLoad.maxIdOf(passed)).isEqualTo(123_456_789_012L);
        String failed = PostgresLoad.checkLine(rows, new PostgresGuest.Amcheck(2, "line 1\nheap table \"t\", block 3: corrupt"));
        assertThat(failed).endsWith("pg_amcheck FAILED, exit 2: heap table \"t\", block 3: corrupt").isNotEqualTo(passed);
        assertThatThrownBy(() -> PostgresLoad.maxIdOf("the rows could not be read: refused")).hasMessageContaining("expected 'N rows up to id M")
                .hasMessageContaining("actual 'the rows could not be read");
    }
}
