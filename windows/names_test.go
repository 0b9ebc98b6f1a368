package windows

import (
	"strings"
	"testing"
)

func TestNameKeyMatches(t *testing.T) {
	names := []string{"", "t", "temp_c", "flow_lpm", "pressure_kpa", "sixteen_chars_xx", "seventeen_chars_x", strings.Repeat("m", 40)}
	record := []byte(`"` + strings.Join(names, `":1,"`) + `":1}`)
	for _, want := range names {
		k := makeNameKey(want)
		for _, other := range names {
			// a slice of the record with capacity past the name, and an
			// exact-capacity copy
			at := strings.Index(string(record), `"`+other+`":`) + 1
			inRecord := record[at : at+len(other)]
			exact := []byte(other)[:len(other):len(other)]
			for _, name := range [][]byte{inRecord, exact} {
				if got := k.matches(name, want); got != (want == other) {
					t.Errorf("key %q matches %q = %v", want, other, got)
				}
			}
		}
	}
}
