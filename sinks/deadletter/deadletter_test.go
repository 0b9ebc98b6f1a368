package deadletter

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/tapline/tapline/schemas"
)

func TestFileWritesOneJSONLinePerLetter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dl", "shard.jsonl")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := []byte{0xff, 0xfe, '\n', '{'}
	letters := []schemas.DeadLetter{
		{Reason: schemas.ReasonMalformedJSON, Error: "malformed_json at byte 3: x", Shard: "shardId-1", Sequence: "49", Arrival: 1700000000000, Data: []byte(`{"device_id":`)},
		{Reason: schemas.ReasonInvalidDeviceID, Error: "bad id", Shard: "shardId-1", Sequence: "50", Data: bad},
	}
	for i := range letters {
		if err := f.Write(&letters[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := f.Write(&letters[0]); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	r, _ := os.Open(path)
	defer r.Close()
	sc := bufio.NewScanner(r)
	var got []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, m)
	}
	if len(got) != 2 || f.Count() != 2 {
		t.Fatalf("%d lines, count %d, want 2", len(got), f.Count())
	}
	if got[0]["reason"] != "malformed_json" || got[0]["sequence"] != "49" || got[0]["data"] != `{"device_id":` {
		t.Errorf("first letter: %v", got[0])
	}
	raw, _ := base64.StdEncoding.DecodeString(got[1]["data_base64"].(string))
	if string(raw) != string(bad) || got[1]["data"] != nil {
		t.Errorf("invalid UTF-8 payload not kept as base64: %v", got[1])
	}
}
