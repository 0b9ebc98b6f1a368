package athena

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/tapline/tapline/sinks/datasets"
)

var update = flag.Bool("update", false, "rewrite testdata/script.golden")

// TestScriptGolden pins the exact DDL users paste into Athena.
func TestScriptGolden(t *testing.T) {
	got, err := Script("tapline", "acme-telemetry", "tapline/prod", "2026-01-01")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		os.WriteFile("testdata/script.golden", []byte(got), 0o644)
	}
	want, err := os.ReadFile("testdata/script.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("DDL changed (go test ./sinks/athena -update, then review):\n%s", got)
	}
}

// TestColumnsFollowSchemas: every Arrow field is a column, in order, so a
// schema change cannot leave the DDL behind.
func TestColumnsFollowSchemas(t *testing.T) {
	tables, err := Tables("b-1.x", "", "2026-01-01")
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		fields := datasets.ByName[tb.Dataset].Fields()
		if len(fields) != len(tb.Columns) {
			t.Fatalf("%s: %d columns, schema has %d fields", tb.Name, len(tb.Columns), len(fields))
		}
		for i, f := range fields {
			if tb.Columns[i].Name != f.Name {
				t.Errorf("%s column %d: %s, schema %s", tb.Name, i, tb.Columns[i].Name, f.Name)
			}
		}
		dir := map[string]string{LandingSuffix: tb.Dataset + "/", CompactedSuffix: "compacted/" + tb.Dataset + "/", "": "compacted/manifests/"}[strings.TrimPrefix(tb.Name, tb.Dataset)]
		if tb.Name == ManifestTable {
			dir = "compacted/manifests/"
		}
		if dir == "" || tb.Location != "s3://b-1.x/"+dir || !strings.HasSuffix(tb.Projection["storage.location.template"], dir+strings.TrimPrefix(strings.TrimPrefix(tb.Projection["storage.location.template"], "s3://b-1.x/"), dir)) || !strings.HasSuffix(tb.Projection["storage.location.template"], "dt=${dt}/hour=${hour}/") {
			t.Errorf("%s: location %s, template %s", tb.Name, tb.Location, tb.Projection["storage.location.template"])
		}
	}
}

func TestRejectsBadNames(t *testing.T) {
	for _, c := range [][4]string{
		{"tapline", "Bad_Bucket", "p", "2026-01-01"},
		{"tapline", "b", "p", "2026-01-01"},
		{"tapline", "bucket", "../p", "2026-01-01"},
		{"tapline", "bucket", "p", "yesterday"},
		{"drop table x;", "bucket", "p", "2026-01-01"},
	} {
		if _, err := Script(c[0], c[1], c[2], c[3]); err == nil {
			t.Errorf("Script%q accepted", c)
		}
	}
}
