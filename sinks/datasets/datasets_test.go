package datasets

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// TestArrowTypesAthenaReads walks every field, nested ones included, and
// rejects types Athena reads badly: timestamps not in ms/us UTC, unsigned
// integers, large or view types.
func TestArrowTypesAthenaReads(t *testing.T) {
	var check func(path string, dt arrow.DataType)
	check = func(path string, dt arrow.DataType) {
		switch ty := dt.(type) {
		case *arrow.TimestampType:
			if ty.Unit != arrow.Millisecond && ty.Unit != arrow.Microsecond || ty.TimeZone != "UTC" {
				t.Errorf("%s: timestamp %s, want ms or us in UTC", path, ty)
			}
		case *arrow.MapType:
			check(path+".key", ty.KeyType())
			check(path+".value", ty.ItemType())
		case *arrow.StructType:
			for _, f := range ty.Fields() {
				check(path+"."+f.Name, f.Type)
			}
		case *arrow.ListType:
			check(path+".element", ty.Elem())
		}
		switch dt.ID() {
		case arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
			t.Errorf("%s: unsigned integer %s", path, dt)
		case arrow.LARGE_STRING, arrow.LARGE_BINARY, arrow.STRING_VIEW, arrow.BINARY_VIEW, arrow.DATE64, arrow.TIME64:
			t.Errorf("%s: %s is not read reliably by Athena", path, dt)
		}
	}
	for name, s := range ByName {
		if v, _ := s.Metadata().GetValue(MetaVersion); v != Version {
			t.Errorf("%s: schema version %q", name, v)
		}
		if d, _ := s.Metadata().GetValue(MetaDataset); d != name {
			t.Errorf("%s: dataset metadata %q", name, d)
		}
		seen := map[string]bool{}
		for _, f := range s.Fields() {
			if seen[f.Name] {
				t.Errorf("%s: duplicate column %s", name, f.Name)
			}
			seen[f.Name] = true
			check(name+"."+f.Name, f.Type)
		}
	}
}
