package athena

import (
	"fmt"
	"path/filepath"
	"strings"
)

// View is what analysts query for a dataset: the rows of the landing
// files no compaction manifest replaced, and of the compacted files
// that a manifest wrote and no later one replaced. A file is named by
// its key relative to the prefix, as manifests name it; a manifest is
// one object, so a reader sees a partition's landing files or its
// compacted files, never both (package compact).
type View struct {
	Name    string
	Columns []Column // the dataset's, then dt and hour
	SQL     string   // the SELECT
}

// source is how one dialect names the three tables of a dataset and a
// row's file.
type source struct {
	landing, compacted, manifest string
	// path is the column of the file a row of alias came from: its full
	// path or URI, which ends with "/" and the key manifests name.
	path func(alias string) string
}

func (src source) view(t Table) View {
	v := View{Name: t.Dataset, Columns: append(append([]Column{}, t.Columns...), t.Partitions...)}
	cols := func(alias string) string {
		var b strings.Builder
		for i, c := range v.Columns {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s.%q", alias, c.Name)
		}
		return b.String()
	}
	listed := func(alias, role string) string {
		// A suffix match names no bucket, so the view is the same in
		// every account (the CDK stack's bucket name is not known at
		// synthesis); the partition columns narrow it to one hour first.
		p := src.path(alias)
		return fmt.Sprintf("SELECT 1 FROM %s m WHERE m.dataset = '%s' AND m.dt = %s.dt AND m.hour = %s.hour AND m.role = '%s' AND substr(%s, -length(m.file) - 1) = '/' || m.file",
			src.manifest, t.Dataset, alias, alias, role, p)
	}
	v.SQL = fmt.Sprintf("SELECT %s\nFROM %s l\nWHERE NOT EXISTS (%s)\nUNION ALL\nSELECT %s\nFROM %s c\nWHERE EXISTS (%s)\n  AND NOT EXISTS (%s)",
		cols("l"), src.landing, listed("l", "source"), cols("c"), src.compacted, listed("c", "output"), listed("c", "source"))
	return v
}

// Views returns the raw, windows and alerts views over the tables of
// Tables in database.
func Views(database string) ([]View, error) {
	if !databaseRE.MatchString(database) {
		return nil, fmt.Errorf("athena: database %q must match %s", database, databaseRE)
	}
	tables, err := Tables("placeholder", "", "2000-01-01")
	if err != nil {
		return nil, err
	}
	var out []View
	for _, t := range tables {
		if !strings.HasSuffix(t.Name, LandingSuffix) {
			continue
		}
		src := source{
			landing:   fmt.Sprintf("%q.%q", database, t.Name),
			compacted: fmt.Sprintf("%q.%q", database, t.Dataset+CompactedSuffix),
			manifest:  fmt.Sprintf("%q.%q", database, ManifestTable),
			path:      func(a string) string { return a + `."$path"` },
		}
		out = append(out, src.view(t))
	}
	return out, nil
}

// DDL renders CREATE OR REPLACE VIEW for the view in database.
func (v View) DDL(database string) string {
	return fmt.Sprintf("CREATE OR REPLACE VIEW %q.%q AS\n%s;\n", database, v.Name, v.SQL)
}

// duckType is the DuckDB type a column of a Hive type reads as.
var duckType = map[string]string{
	"string": "VARCHAR", "timestamp": "TIMESTAMP WITH TIME ZONE", "bigint": "BIGINT",
	"double": "DOUBLE", "binary": "BLOB", "map<string,double>": "MAP(VARCHAR, DOUBLE)", "map<string,string>": "MAP(VARCHAR, VARCHAR)",
}

// DuckDB returns statements that create the views, and the tables under
// them, in DuckDB over a local copy of a prefix (root: a directory
// laid out as the bucket's prefix, such as tapline demo's output or
// versitygw's bucket directory): the same SQL as Athena's views, for
// tests and for analysis on a laptop. A table without files yet is an
// empty relation of its columns (DuckDB refuses a glob that matches
// nothing), so the statements must be made again after files appear.
func DuckDB(root string) (string, error) {
	root = filepath.Clean(root)
	if strings.ContainsAny(root, "'\\") {
		return "", fmt.Errorf("athena: directory %q has a quote or backslash", root)
	}
	tables, err := Tables("local", "", "2000-01-01")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	scan := map[string]string{}
	for _, t := range tables {
		dir := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(t.Location, "s3://local/")))
		glob := dir + strings.Repeat("/*", len(t.Partitions)) + "/*.parquet"
		if m, _ := filepath.Glob(glob); len(m) == 0 {
			// An empty relation of the table's columns.
			var cols []string
			for _, c := range append(append([]Column{}, t.Columns...), t.Partitions...) {
				cols = append(cols, fmt.Sprintf("CAST(NULL AS %s) AS %q", duckType[c.Type], c.Name))
			}
			scan[t.Name] = fmt.Sprintf("(SELECT %s, CAST(NULL AS VARCHAR) AS filename WHERE false)", strings.Join(cols, ", "))
		} else {
			var types []string
			for _, c := range t.Partitions {
				types = append(types, fmt.Sprintf("'%s': VARCHAR", c.Name))
			}
			scan[t.Name] = fmt.Sprintf("read_parquet('%s', hive_partitioning = true, hive_types = {%s}, filename = true)", glob, strings.Join(types, ", "))
		}
		fmt.Fprintf(&b, "CREATE OR REPLACE VIEW %q AS SELECT * FROM %s;\n", t.Name, scan[t.Name])
	}
	for _, t := range tables {
		if !strings.HasSuffix(t.Name, LandingSuffix) {
			continue
		}
		src := source{
			landing: fmt.Sprintf("%q", t.Name), compacted: fmt.Sprintf("%q", t.Dataset+CompactedSuffix), manifest: fmt.Sprintf("%q", ManifestTable),
			path: func(a string) string { return a + ".filename" },
		}
		fmt.Fprintf(&b, "CREATE OR REPLACE VIEW %q AS\n%s;\n", t.Dataset, src.view(t).SQL)
	}
	return b.String(), nil
}
