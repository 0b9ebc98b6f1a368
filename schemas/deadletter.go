package schemas

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
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

// MarshalJSON is AppendJSON for encoding/json.
func (d *DeadLetter) MarshalJSON() ([]byte, error) { return d.AppendJSON(nil), nil }

// AppendJSON appends the dead letter as one JSON object: reason, error,
// shard, sequence, arrival_ms, and the payload as data when it is valid
// UTF-8, data_base64 otherwise (neither when it is empty), so every dead
// letter is one valid JSON line. The bytes are encoding/json's for that
// object (FuzzDeadLetterJSON), without its reflection and the second
// scan it gives a MarshalJSON's output: a shard that dead-letters one
// record in a hundred spent more on those than on the other
// ninety-nine.
func (d *DeadLetter) AppendJSON(b []byte) []byte {
	b = append(b, `{"reason":`...)
	b = AppendJSONString(b, d.Reason.String())
	b = append(b, `,"error":`...)
	b = AppendJSONString(b, d.Error)
	b = append(b, `,"shard":`...)
	b = AppendJSONString(b, d.Shard)
	b = append(b, `,"sequence":`...)
	b = AppendJSONString(b, d.Sequence)
	b = append(b, `,"arrival_ms":`...)
	b = strconv.AppendInt(b, d.Arrival, 10)
	switch {
	case len(d.Data) == 0:
	case utf8.Valid(d.Data):
		b = append(b, `,"data":`...)
		b = AppendJSONString(b, d.Data)
	default:
		b = append(b, `,"data_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, d.Data)
		b = append(b, '"')
	}
	return append(b, '}')
}

// AppendJSONString appends s quoted as encoding/json quotes it (HTML
// characters escaped), without a reflection or an allocation for
// printable ASCII; the rest (control characters, non-ASCII, which it may
// replace or escape) goes through encoding/json itself.
func AppendJSONString[T string | []byte](b []byte, s T) []byte {
	b = append(b, '"')
	from := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			continue
		}
		b = append(b, s[from:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '<', '>', '&':
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		default:
			q, _ := json.Marshal(string(s[i:]))
			return append(b, q[1:]...) // its closing quote is the string's
		}
		from = i + 1
	}
	b = append(b, s[from:]...)
	return append(b, '"')
}
