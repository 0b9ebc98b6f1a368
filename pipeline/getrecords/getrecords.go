// Package getrecords decodes Kinesis GetRecords responses for the KCL
// without the AWS SDK's generic deserializer, which costs 1.8-3.3 µs and
// 9 allocations a record (its schema-driven JSON reader, a base64 string
// copy, and a big.Float for every arrival time): ten times tapline's whole
// shard loop.
//
// Install replaces the Kinesis client's protocol with one that decodes a
// successful GetRecords answer itself, in one pass over the body (two for
// a client's first answer, whose records are counted first), into a
// handful of allocations per response whatever its length: one buffer
// for every payload, one the sequence numbers and partition keys are
// appended to and viewed in place (another of either if the estimate
// from the answer before falls short), and the slices of records,
// strings and times the output's pointers point into; with Reuse, all
// but the strings' bytes are those of an answer the caller released
// (Release). Everything else (other operations, error
// answers, throttling and ExpiredIterator, the retries around them) stays
// the SDK's, and so does any answer this decoder does not expect:
// escaped strings, child shards, fields it does not know, numbers out of
// range. Those go to the SDK's decoder, so the output is the SDK's in
// every case (FuzzDecode compares them).
package getrecords

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Protocol is the Kinesis client's protocol with GetRecords answers
// decoded by Decode. Fast and Fallback count the answers each decoder
// took.
type Protocol struct {
	smithyhttp.ClientProtocol
	// HidePayloads: see Payload. Set it before the first call.
	HidePayloads bool
	// Reuse: see Release; Poison too, for tests. Set them before the
	// first call.
	Reuse, Poison  bool
	bufs           chan *bytes.Buffer // answers' bodies, kept across GCs; see body
	spare          sync.Pool          // more of them, while no GC runs
	Fast, Fallback atomic.Uint64
	// Reused counts the answers decoded into buffers released before.
	Reused atomic.Uint64
	last   atomic.Pointer[shape] // the last answer with records

	answers     chan *answer // released answers' buffers, as bufs
	spareAnswer sync.Pool
	mu          sync.Mutex
	lent        [maxLent]*answer // answers out with their records, for Release
	nextLent    int
}

// Install is a kinesis.Options function: kinesis.NewFromConfig(cfg,
// getrecords.Install).
func Install(o *kinesis.Options) {
	o.Protocol = &Protocol{ClientProtocol: o.Protocol, bufs: make(chan *bytes.Buffer, keptBodies), answers: make(chan *answer, keptBodies)}
}

// keptBodies is how many answers' body buffers a Protocol keeps for the
// next answers whatever the GC does. A sync.Pool alone loses them at
// every second GC, and then an answer's 4-5 MB are read into fresh
// memory, zeroed first: 2.7% of the whole process's profile
// (benchmarks/RESULTS.md). Shards past the first few take theirs from
// the pool. At most keptBodies × maxBody stay allocated.
const keptBodies = 4

// body returns a buffer for an answer's body; put gives it back.
func (p *Protocol) body() *bytes.Buffer {
	select {
	case b := <-p.bufs:
		return b
	default:
	}
	if b, _ := p.spare.Get().(*bytes.Buffer); b != nil {
		return b
	}
	return new(bytes.Buffer)
}

func (p *Protocol) put(b *bytes.Buffer) {
	select {
	case p.bufs <- b:
	default:
		p.spare.Put(b)
	}
}

// maxRecords is the most records GetRecords answers (its Limit's
// bound); an answer with more is decoded still, by growing its slice.
const maxRecords = 10_000

// maxBody bounds an answer read here: Kinesis answers at most 10 MiB of
// payload (base64: 13.4 MiB) plus its JSON.
const maxBody = 16 << 20

// DeserializeResponse decodes a successful GetRecords answer with Decode
// and hands everything else to the SDK.
func (p *Protocol) DeserializeResponse(ctx context.Context, schema *smithy.OperationSchema, reg *smithy.TypeRegistry, resp *smithyhttp.Response, out smithy.Deserializable) error {
	o, ok := out.(*kinesis.GetRecordsOutput)
	if !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 || resp.Body == nil {
		return p.ClientProtocol.DeserializeResponse(ctx, schema, reg, resp, out)
	}
	buf := p.body()
	defer p.put(buf)
	buf.Reset()
	if n := resp.ContentLength; n > 0 && n <= maxBody {
		// ReadFrom wants MinRead bytes free to see the end: without
		// them a fresh buffer would double, and copy, after the body.
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBody+1)); err != nil {
		return &smithy.DeserializationError{Err: err}
	}
	if buf.Len() <= maxBody {
		var a *answer // nil: decode makes the buffers and nobody keeps them
		pooled := false
		if p.Reuse {
			if a = p.reused(); a != nil {
				pooled = true
			} else {
				a = new(answer)
			}
		}
		sh, err := decode(buf.Bytes(), o, p.last.Load(), a)
		switch {
		case err == nil && sh.records > 0 && p.Reuse:
			if pooled {
				p.Reused.Add(1)
			}
			p.lend(a)
		case pooled:
			// No record holds them (an empty answer, or one the SDK
			// decodes): the next answer can have them.
			p.giveBack(a)
		}
		if err == nil {
			if sh.records > 0 {
				p.last.Store(&sh)
			}
			p.Fast.Add(1)
			if p.HidePayloads {
				hide(o.Records)
			}
			return nil
		}
	}
	p.Fallback.Add(1)
	resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(bytes.Clone(buf.Bytes())), resp.Body))
	return p.ClientProtocol.DeserializeResponse(ctx, schema, reg, resp, out)
}

// kplMagic starts a record the Kinesis Producer Library aggregated.
var kplMagic = []byte{0xf3, 0x89, 0x9a, 0xc2}

// The KCL hands every GetRecords answer to the KPL deaggregator before
// the record processor sees it, and the deaggregator formats the first
// four bytes of every record with fmt.Sprintf("%q") to compare them with
// kplMagic: 5% of the whole process's CPU, more than its GetRecords
// decoding. With HidePayloads, an answer decoded here carries each
// payload that is not KPL-aggregated as an empty slice whose capacity
// holds it (payload[:0]); the deaggregator passes records shorter than
// the magic through untouched, and the record processor reads the
// payload back with Payload. Aggregated records keep their data, and the
// deaggregator unpacks them as before.
func hide(recs []types.Record) {
	for i := range recs {
		if d := recs[i].Data; !bytes.HasPrefix(d, kplMagic) {
			recs[i].Data = d[:0]
		}
	}
}

// Payload is r's data: the payload HidePayloads hid in its capacity, or
// r.Data as it is. The capacity is the payload's own: Decode slices every
// payload to its length (data[at:at+n:at+n]), and the SDK's decoder,
// which hides nothing, leaves no capacity to an empty payload.
func Payload(r *types.Record) []byte {
	if len(r.Data) == 0 {
		return r.Data[:cap(r.Data)]
	}
	return r.Data
}

// errUnexpected: the answer is not one Decode takes; the SDK decodes it.
var errUnexpected = errors.New("getrecords: not a plain GetRecords answer")

// Decode decodes a GetRecords answer into o, or returns an error and
// leaves o alone if the answer is anything but the plain JSON Kinesis
// sends (see the package doc). The output's slices and strings share a
// few allocations; nothing aliases b.
func Decode(b []byte, o *kinesis.GetRecordsOutput) error {
	_, err := decode(b, o, nil, nil)
	return err
}

// shape is what an answer held, to size the next one's buffers by.
type shape struct {
	body, records, payload int // bytes, records, decoded payload bytes
}

// answer holds the buffers an answer's records, their pointers and their
// payloads live in: about 3 MB for 10,000 records, zeroed when made. The
// strings' bytes are not among them: sequence numbers outlive the
// answer (the batch writer and the journal keep them), so text is always
// fresh, and strs holds only headers that view it.
type answer struct {
	recs  []types.Record
	strs  []string
	times []time.Time
	data  []byte // the first chunk: the first record's payload starts it
}

// maxLent bounds the answers a Protocol remembers for Release: one per
// shard a worker reads at once would do. An answer forgotten is only
// never reused.
const maxLent = 64

// Release hands back the buffers of the answer recs came from (the
// records the KCL passed to ProcessRecords, deaggregated or not), for the
// next answers' records to be decoded into: the caller, and the KCL, must
// be done with every record, payload, arrival time and string pointer of
// it, and call it once. The strings themselves (sequence numbers,
// partition keys) stay valid. Without Reuse, and for records this
// Protocol did not decode, it does nothing. The KCL's shard loop calls
// ProcessRecords and then asks for the next answer, so a record
// processor that keeps no payload calls Release as ProcessRecords
// returns. Reusing the buffers saves zeroing and collecting 3 MB an
// answer: a third of the decoder's time.
//
// With Poison, released buffers are overwritten first, so a payload kept
// past Release shows as garbage in a test's output.
func (p *Protocol) Release(recs []types.Record) {
	if !p.Reuse || len(recs) == 0 || cap(recs[0].Data) == 0 {
		return
	}
	key := unsafe.SliceData(recs[0].Data)
	p.mu.Lock()
	var a *answer
	for i, l := range p.lent {
		if l != nil && unsafe.SliceData(l.data) == key {
			a, p.lent[i] = l, nil
			break
		}
	}
	p.mu.Unlock()
	if a == nil {
		return
	}
	if p.Poison {
		poison(a)
	}
	// The headers would keep their answer's text alive in the pool.
	clear(a.strs[:cap(a.strs)])
	p.giveBack(a)
}

// giveBack keeps a's buffers for the next answer.
func (p *Protocol) giveBack(a *answer) {
	select {
	case p.answers <- a:
	default:
		p.spareAnswer.Put(a)
	}
}

// poison overwrites a released answer: a payload, a time or a record
// read after Release reads this, not the data it had.
func poison(a *answer) {
	d := a.data[:cap(a.data)]
	for i := range d {
		d[i] = 0xA5
	}
	clear(a.recs[:cap(a.recs)])
	t := a.times[:cap(a.times)]
	for i := range t {
		t[i] = time.Unix(1<<40, 0)
	}
}

// lend remembers a for Release, forgetting the oldest if maxLent are
// out.
func (p *Protocol) lend(a *answer) {
	p.mu.Lock()
	p.lent[p.nextLent] = a
	p.nextLent = (p.nextLent + 1) % maxLent
	p.mu.Unlock()
}

// reused returns a released answer's buffers, or nil.
func (p *Protocol) reused() *answer {
	select {
	case a := <-p.answers:
		return a
	default:
	}
	a, _ := p.spareAnswer.Get().(*answer)
	return a
}

// decode is Decode with its buffers sized from last, an earlier answer
// (nil: none), taken from reuse where they are large enough and
// recorded in it for the next answer (nil: all made, none kept), and
// returns this answer's shape. Without a guess, the records are counted
// first (a pass over the body) and the payloads' buffer is sized as if
// the body were all payload: for Kinesis's answers about 40% more memory
// to zero and then to keep alive with the records, for the keys,
// sequence numbers and times no payload holds. A guess that falls short
// costs a second chunk, or (records) a copy.
func decode(b []byte, o *kinesis.GetRecordsOutput, last *shape, reuse *answer) (shape, error) {
	d := decoder{b: b}
	var n, size int
	if last != nil && last.records > 0 && last.body > 0 {
		// Bounded as a count would be: by GetRecords's limit of 10,000
		// records and by the body, whatever the answer before held.
		perByte := 1.03 / float64(last.body)
		n = min(int(float64(len(b)*last.records)*perByte)+16, maxRecords, len(b)/2)
		size = int(float64(len(b)*last.payload)*perByte) + 4096
	} else {
		// Every record ends with a brace: a bound on their number
		// (SIMD fast), so the slices are made once.
		n = bytes.Count(b, []byte{'}'})
		size = base64.StdEncoding.DecodedLen(len(b))
	}
	size = min(size, base64.StdEncoding.DecodedLen(len(b)))
	a := reuse
	if a == nil {
		a = new(answer)
	}
	d.recs = a.recs[:0]
	if cap(d.recs) < n {
		d.recs = make([]types.Record, 0, n)
	}
	d.strs = a.strs[:0]
	if cap(d.strs) < 2*n {
		d.strs = make([]string, 0, 2*n)
	}
	d.times = a.times[:0]
	if cap(d.times) < n {
		d.times = make([]time.Time, 0, n)
	}
	d.data = a.data[:0]
	if cap(d.data) < size || cap(d.data) == 0 {
		d.data = make([]byte, 0, max(size, 1))
	}
	// The first chunks: what later answers can reuse. A chunk added when
	// a guess fell short is not kept.
	a.recs, a.strs, a.times, a.data = d.recs, d.strs, d.times, d.data
	d.text = make([]byte, 0, 80*n)
	var out kinesis.GetRecordsOutput
	if err := d.output(&out); err != nil {
		return shape{}, err
	}
	*o = out
	return shape{body: len(b), records: len(out.Records), payload: d.payload}, nil
}

// chunk is how many more strings or times are allocated at once if the
// first estimate falls short: pointers into a chunk stay valid as the
// next ones fill.
const chunk = 1024

type decoder struct {
	b     []byte
	i     int
	recs  []types.Record
	strs  []string // the current chunk of strings
	times []time.Time
	data  []byte
	text  []byte // the current chunk of the strings' bytes, only appended to
	// payload is the bytes decoded into data, over all its chunks.
	payload int
	// after[k] is the key that followed key k in the last record: the
	// next record's likely order.
	after [keyNone + 1]int
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) byte(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// str returns a string's bytes without its quotes; no escapes allowed.
// long: see quoted.
func (d *decoder) str(long bool) ([]byte, error) {
	if !d.byte('"') {
		return nil, errUnexpected
	}
	s, ok := d.quoted(long)
	if !ok {
		return nil, errUnexpected
	}
	return s, nil
}

// quoted returns the rest of a string whose opening quote is consumed,
// and consumes its closing quote; ok is false if a backslash or a
// control character comes first (escapes are the SDK's). One pass, eight
// bytes at a time, for all three: x has a byte below n if (x - n×0x01…)
// & ^x & 0x80… is not zero (Anderson's "bit twiddling hacks"), and a
// byte c where x ^ c×0x01… has a zero byte. Where a word holds any, the
// first is its lowest flagged byte: a borrow only flags bytes above the
// one that caused it. With long (sequence numbers: 56 digits), 32 bytes a
// step first where the CPU can (scanVector), which costs a short string
// (a key) more than it saves.
func (d *decoder) quoted(long bool) (s []byte, ok bool) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	b, i := d.b, d.i
	if long && scanVector != nil && len(b)-i >= 32 {
		i += scanVector(b[i:])
	}
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q, e := x^('"'*ones), x^('\\'*ones)
		if m := ((q-ones)&^q | (e-ones)&^e | (x-0x20*ones)&^x) & highs; m != 0 {
			i += bits.TrailingZeros64(m) / 8
			break
		}
	}
	for ; i < len(b) && b[i] != '"'; i++ {
		if b[i] == '\\' || b[i] < 0x20 {
			return nil, false
		}
	}
	if i >= len(b) || b[i] != '"' {
		return nil, false
	}
	s, d.i = b[d.i:i], i+1
	return s, true
}

// null consumes a JSON null.
func (d *decoder) null() bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == 'n' && bytes.HasPrefix(d.b[d.i:], []byte("null")) {
		d.i += 4
		return true
	}
	return false
}

// number returns a JSON number's text: -?(0|[1-9][0-9]*)(.[0-9]+)?
// ([eE][+-]?[0-9]+)?, and whether it is an integer (no fraction or
// exponent). strconv would take more ("+1", "007"), which the SDK does
// not.
func (d *decoder) number() (num []byte, integer bool, err error) {
	d.ws()
	start := d.i
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	lead := d.i
	if n := digits(); n == 0 || n > 1 && d.b[lead] == '0' {
		return nil, false, errUnexpected
	}
	integer = true
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return nil, false, errUnexpected
		}
		integer = false
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, false, errUnexpected
		}
		integer = false
	}
	return d.b[start:d.i], integer, nil
}

// object calls field for each key of an object; field must consume the
// value.
func (d *decoder) object(field func(key []byte) error) error {
	if !d.byte('{') {
		return errUnexpected
	}
	if d.byte('}') {
		return nil
	}
	for {
		k, err := d.str(false)
		if err != nil {
			return err
		}
		if !d.byte(':') {
			return errUnexpected
		}
		if err := field(k); err != nil {
			return err
		}
		if d.byte(',') {
			continue
		}
		if d.byte('}') {
			return nil
		}
		return errUnexpected
	}
}

func (d *decoder) output(o *kinesis.GetRecordsOutput) error {
	err := d.object(func(k []byte) error {
		switch string(k) {
		case "Records":
			return d.records(o)
		case "NextShardIterator":
			if d.null() {
				return nil
			}
			s, err := d.str(false)
			if err == nil {
				o.NextShardIterator = ptr(string(s))
			}
			return err
		case "MillisBehindLatest":
			if d.null() {
				return nil
			}
			s, integer, err := d.number()
			if err != nil || !integer {
				return errUnexpected
			}
			v, err := strconv.ParseInt(unsafeString(s), 10, 64)
			if err != nil {
				return errUnexpected
			}
			o.MillisBehindLatest = &v
			return nil
		case "ChildShards":
			if d.null() || d.byte('[') && d.byte(']') {
				if o.ChildShards == nil {
					o.ChildShards = []types.ChildShard{}
				}
				return nil
			}
			return errUnexpected // a shard's end: rare, the SDK's
		}
		return errUnexpected
	})
	if err != nil {
		return err
	}
	d.ws()
	if d.i != len(d.b) {
		return errUnexpected
	}
	return nil
}

func (d *decoder) records(o *kinesis.GetRecordsOutput) error {
	if d.null() {
		return nil
	}
	if !d.byte('[') {
		return errUnexpected
	}
	if o.Records == nil {
		o.Records = d.recs[:0:0] // not the buffer: an empty answer gives it back
	}
	if d.byte(']') {
		return nil
	}
	for {
		if err := d.record(); err != nil {
			return err
		}
		if d.byte(',') {
			continue
		}
		if d.byte(']') {
			o.Records = d.recs
			return nil
		}
		return errUnexpected
	}
}

// recordKeys are a record's keys as Kinesis writes them, quoted, with
// the colon after.
var recordKeys = [...]string{`"Data":`, `"PartitionKey":`, `"SequenceNumber":`, `"ApproximateArrivalTimestamp":`, `"EncryptionType":`}

const (
	keyData = iota
	keyPartitionKey
	keySequenceNumber
	keyApproximateArrivalTimestamp
	keyEncryptionType
	keyNone // before a record's first key: after[keyNone] is the first
)

func (d *decoder) record() error {
	d.recs = append(d.recs, types.Record{})
	r := &d.recs[len(d.recs)-1]
	if !d.byte('{') {
		return errUnexpected
	}
	if d.byte('}') {
		return nil
	}
	// Every record has its keys in the order the one before had them:
	// the key expected next is compared whole, which costs less than
	// scanning it for its end (a third of a record's strings by length).
	prev := keyNone
	for {
		d.ws()
		k := d.after[prev]
		if want := recordKeys[k]; len(d.b)-d.i >= len(want) && string(d.b[d.i:d.i+len(want)]) == want {
			d.i += len(want)
		} else {
			name, err := d.str(false)
			if err != nil || !d.byte(':') {
				return errUnexpected
			}
			if k = keyOf(name); k == keyNone {
				return errUnexpected
			}
			d.after[prev] = k
		}
		if err := d.field(r, k); err != nil {
			return err
		}
		prev = k
		if d.byte(',') {
			continue
		}
		if d.byte('}') {
			return nil
		}
		return errUnexpected
	}
}

// keyOf is name's index in recordKeys, or keyNone.
func keyOf(name []byte) int {
	for k, key := range recordKeys {
		if string(name) == key[1:len(key)-2] {
			return k
		}
	}
	return keyNone
}

// field reads the value of a record's key k into r.
func (d *decoder) field(r *types.Record, k int) error {
	switch k {
	case keyData:
		if d.null() {
			return nil
		}
		// The closing quote, then decode64 checks every byte (a
		// backslash, a quote, a control character are not base64).
		if !d.byte('"') {
			return errUnexpected
		}
		j := bytes.IndexByte(d.b[d.i:], '"')
		if j < 0 {
			return errUnexpected
		}
		s := d.b[d.i : d.i+j]
		d.i += j + 1
		if need := len(s) / 4 * 3; cap(d.data)-len(d.data) < need {
			// The guess fell short: the rest of the body bounds what is
			// left. The payloads before keep the chunk they are in.
			d.data = make([]byte, 0, max(need, base64.StdEncoding.DecodedLen(len(d.b)-d.i)))
		}
		at := len(d.data)
		n, ok := decode64(d.data[at:cap(d.data)], s)
		if !ok {
			return errUnexpected
		}
		d.data = d.data[:at+n]
		d.payload += n
		r.Data = d.data[at : at+n : at+n]
		return nil
	case keyPartitionKey:
		return d.text1(&r.PartitionKey, false)
	case keySequenceNumber:
		return d.text1(&r.SequenceNumber, true)
	case keyApproximateArrivalTimestamp:
		if d.null() {
			return nil
		}
		f, ok := d.decimal()
		var err error
		if !ok {
			var s []byte
			if s, _, err = d.number(); err != nil {
				return err
			}
			f, err = parseFloat(s)
		}
		// The SDK makes the time with big.Float: the product rounded
		// to 53 bits, then truncated, which float64 does alike in
		// range; outside it, the SDK's.
		ms := f * 1e3
		if err != nil || math.IsNaN(ms) || ms >= math.MaxInt64 || ms <= math.MinInt64 {
			return errUnexpected
		}
		if len(d.times) == cap(d.times) {
			d.times = make([]time.Time, 0, chunk)
		}
		d.times = append(d.times, time.Unix(0, int64(ms)*1e6).UTC())
		r.ApproximateArrivalTimestamp = &d.times[len(d.times)-1]
		return nil
	case keyEncryptionType:
		if d.null() {
			return nil
		}
		s, err := d.str(false)
		if err != nil {
			return err
		}
		switch string(s) {
		case "NONE":
			r.EncryptionType = types.EncryptionTypeNone
		case "KMS":
			r.EncryptionType = types.EncryptionTypeKms
		default:
			return errUnexpected
		}
		return nil
	}
	return errUnexpected
}

// text1 reads a string into the shared text: the strings of an answer
// view a few buffers that are only ever appended to, never copied again.
func (d *decoder) text1(p **string, long bool) error {
	if d.null() {
		return nil
	}
	s, err := d.str(long)
	if err != nil {
		return err
	}
	if *p != nil {
		return errUnexpected // a duplicate key
	}
	var v string
	if len(s) > 0 {
		if len(d.text)+len(s) > cap(d.text) {
			d.text = make([]byte, 0, max(len(s), 64*chunk))
		}
		at := len(d.text)
		d.text = append(d.text, s...)
		v = unsafe.String(&d.text[at], len(s))
	}
	if len(d.strs) == cap(d.strs) {
		d.strs = make([]string, 0, chunk)
	}
	d.strs = append(d.strs, v)
	*p = &d.strs[len(d.strs)-1]
	return nil
}

// decimal reads a number as arrival times are written, in one pass:
// digits with perhaps a fraction and perhaps an exponent, at most 15
// digits in all. Kinesis writes them as Java's Double.toString does
// (1.764266400123E9), kinesalite and the SDKs' encoders as decimals
// (1764266400.123). It returns the value parseFloat gives (by the same
// shortcut); for any other number (a sign, more digits, an exponent out
// of the shortcut's range) it moves nothing and returns false, and
// number and parseFloat read it.
func (d *decoder) decimal() (float64, bool) {
	b, i := d.b, d.i
	var m uint64
	digits, decimals := 0, 0
	for ; i < len(b) && b[i]-'0' <= 9; i++ {
		m = m*10 + uint64(b[i]-'0')
		digits++
	}
	if digits == 0 || digits > 1 && b[d.i] == '0' {
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && b[i]-'0' <= 9; i++ {
			m = m*10 + uint64(b[i]-'0')
			decimals++
		}
		if decimals == 0 {
			return 0, false
		}
	}
	exp := -decimals
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		neg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			neg = b[i] == '-'
			i++
		}
		e, n := 0, 0
		for ; i < len(b) && b[i]-'0' <= 9 && n < 3; i++ {
			e = e*10 + int(b[i]-'0')
			n++
		}
		if n == 0 || i < len(b) && b[i]-'0' <= 9 {
			return 0, false
		}
		if neg {
			e = -e
		}
		exp += e
	}
	if digits+decimals > 15 || i < len(b) && b[i] == '.' {
		return 0, false
	}
	// strconv's exact cases: m and 10^|exp| are exact float64s and one
	// operation rounds them once; a product stays an exact integer.
	var f float64
	switch {
	case exp <= 0 && exp >= -15:
		f = float64(m) / pow10[-exp]
	case exp > 0 && exp <= 15 && m <= 1e15/uint64(pow10[exp]):
		f = float64(m) * pow10[exp]
	default:
		return 0, false
	}
	d.i = i
	return f, true
}

// pow10 holds the powers of ten parseFloat's shortcut divides by
// (decimals ≤ digits ≤ 15), each exact in a float64.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// parseFloat is strconv.ParseFloat for a JSON number (as number checked
// it), with strconv's own exact shortcut taken first: a number of at
// most 15 digits, as arrival times are (1764266400.123), is a float64
// integer divided by an exact power of ten, which IEEE rounds as
// ParseFloat does.
func parseFloat(s []byte) (float64, error) {
	var m uint64
	digits, decimals, frac := 0, 0, false
	body, neg := bytes.CutPrefix(s, []byte("-"))
	for _, c := range body {
		switch {
		case c >= '0' && c <= '9':
			m = m*10 + uint64(c-'0')
			digits++
			if frac {
				decimals++
			}
		case c == '.' && !frac:
			frac = true
		default:
			return strconv.ParseFloat(unsafeString(s), 64)
		}
	}
	if digits > 15 {
		return strconv.ParseFloat(unsafeString(s), 64)
	}
	f := float64(m) / pow10[decimals]
	if neg {
		f = -f
	}
	return f, nil
}

func ptr[T any](v T) *T { return &v }

// unsafeString views b as a string for a parse that does not keep it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
