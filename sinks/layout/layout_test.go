package layout

import (
	"path"
	"strings"
	"testing"
	"time"
)

func TestKey(t *testing.T) {
	ms := time.Date(2026, 11, 27, 18, 4, 5, 0, time.UTC).UnixMilli()
	got, err := Key("tapline/prod", Windows, ms, "shardId-000000000001", "4959", "4971", "parquet")
	if err != nil {
		t.Fatal(err)
	}
	if want := "tapline/prod/windows/dt=2026-11-27/hour=18/shardId-000000000001-4959-4971.parquet"; got != want {
		t.Fatalf("Key = %s, want %s", got, want)
	}
	if got, _ := Key("", Alerts, 0, "s", "1", "2", "jsonl"); got != "alerts/dt=1970-01-01/hour=00/s-1-2.jsonl" {
		t.Fatalf("empty prefix: %s", got)
	}
	for _, bad := range []struct{ prefix, dataset, shard, first, ext string }{
		{"../x", Raw, "s", "1", "parquet"},
		{"/abs", Raw, "s", "1", "parquet"},
		{"a//b", Raw, "s", "1", "parquet"},
		{"a/b/", Raw, "s", "1", "parquet"},
		{"a b", Raw, "s", "1", "parquet"},
		{"p", "other", "s", "1", "parquet"},
		{"p", Raw, "../s", "1", "parquet"},
		{"p", Raw, "s/t", "1", "parquet"},
		{"p", Raw, "s", "1/2", "parquet"},
		{"p", Raw, "s", "", "parquet"},
		{"p", Raw, "s", "1", "exe"},
	} {
		if k, err := Key(bad.prefix, bad.dataset, 0, bad.shard, bad.first, "2", bad.ext); err == nil {
			t.Errorf("Key(%+v) = %s, want an error", bad, k)
		}
	}
}

// FuzzKey: whatever the inputs, an accepted key stays inside its prefix
// and its dataset's partition, and cleaning it changes nothing (no '..',
// no '//', no '.').
func FuzzKey(f *testing.F) {
	f.Add("tapline/prod", "shardId-000000000001", "4959", "4971", int64(1764266645000))
	f.Add("..", "../../etc", "1", "2", int64(0))
	f.Add("a/./b", "s", "00", "9", int64(-1))
	f.Fuzz(func(t *testing.T, prefix, shard, first, last string, ms int64) {
		k, err := Key(prefix, Windows, ms, shard, first, last, "parquet")
		if err != nil {
			return
		}
		if path.Clean(k) != k || strings.HasPrefix(k, "/") {
			t.Fatalf("key %q is not clean", k)
		}
		root := Windows + "/dt="
		if prefix != "" {
			root = prefix + "/" + root
		}
		if !strings.HasPrefix(k, root) {
			t.Fatalf("key %q escapes %q", k, root)
		}
		if strings.Count(k[len(root):], "/") != 2 {
			t.Fatalf("key %q has extra levels", k)
		}
	})
}

func TestAlertDeadLetterKey(t *testing.T) {
	k, err := AlertDeadLetterKey("p", 0, "0123456789abcdef", "FIRING")
	if err != nil || k != "p/deadletter/dt=1970-01-01/hour=00/alert-0123456789abcdef-firing.jsonl" {
		t.Fatalf("%s %v", k, err)
	}
	for _, bad := range [][2]string{{"../x", "FIRING"}, {"0123456789ABCDEF", "FIRING"}, {"0123456789abcdef", "OK"}} {
		if _, err := AlertDeadLetterKey("p", 0, bad[0], bad[1]); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}
