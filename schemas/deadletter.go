package schemas

import (
	"encoding/base64"
	"encoding/json"
	"unicode/utf8"
)

// DeadLetter is a record tapline could not use, with why and where it came
// from. Dead letters are data: they are written (as JSON lines) where
// operators can inspect and replay them, never dropped.
type DeadLetter struct {
	Reason   Reason
	Error    string // one line
	Shard    string
	Sequence string // Kinesis sequence number
	Arrival  int64  // Kinesis arrival time, Unix ms
	Data     []byte // the record as received (aliased: copy to keep)
}

// MarshalJSON writes the payload as a string when it is valid UTF-8 and
// as base64 otherwise, so every dead letter is one valid JSON line.
func (d *DeadLetter) MarshalJSON() ([]byte, error) {
	out := struct {
		Reason     string `json:"reason"`
		Error      string `json:"error"`
		Shard      string `json:"shard"`
		Sequence   string `json:"sequence"`
		ArrivalMs  int64  `json:"arrival_ms"`
		Data       string `json:"data,omitempty"`
		DataBase64 string `json:"data_base64,omitempty"`
	}{Reason: d.Reason.String(), Error: d.Error, Shard: d.Shard, Sequence: d.Sequence, ArrivalMs: d.Arrival}
	if utf8.Valid(d.Data) {
		out.Data = string(d.Data)
	} else {
		out.DataBase64 = base64.StdEncoding.EncodeToString(d.Data)
	}
	return json.Marshal(out)
}
