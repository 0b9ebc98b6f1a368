package windows

import (
	"strings"
	"testing"
)

func TestNameKeyQuick(t *testing.T) {
	names := []string{"", "t", "temp_c", "flow_lpm", "battery_v", "pressure_kpa", "sixteen_chars_xx", "seventeen_chars_x", strings.Repeat("m", 40)}
	record := []byte(`"` + strings.Join(names, `":1,"`) + `":1,"padding":"........"}`)
	for _, want := range names {
		k := makeNameKey(want)
		for _, other := range names {
			at := strings.Index(string(record), `"`+other+`":`) + 1
			inRecord := record[at : at+len(other)]
			exact := []byte(other)[:len(other):len(other)]
			for _, name := range [][]byte{inRecord, exact} {
				quick := k.quick(name)
				if quick && want != other {
					t.Errorf("quick(%q) matched key %q", other, want)
				}
				if !quick && want == other && len(want) <= 16 && cap(name) >= 16 {
					t.Errorf("quick(%q) missed key %q with room to load", other, want)
				}
			}
		}
	}
}
