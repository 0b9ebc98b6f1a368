package schemas

import "strconv"

// Batched readings: one message carries several readings of one device,
//
//	{"device_id":"keg-0042","readings":[
//	  {"ts":1732712345123,"seq":7,"metrics":{"flow_lpm":3.2}},
//	  {"ts":1732712355123,"seq":8,"flow_lpm":3.4,"temp_c":4.1}]}
//
// so a device that reports every second and publishes every ten pays for
// a tenth of the IoT Core messages. A reading is what a record is without
// device_id: ts (required), seq (optional), metrics and numeric fields.
// The message holds device_id and readings, and nothing a reading holds
// (a ts, seq or metric beside readings is refused: whose would it be?).
// The whole message is refused for malformed JSON or a bad device_id;
// otherwise each reading stands alone: a bad one is rejected with its
// index (readings[3]: ...) and the others are kept.

// Batched reports whether the message the last Decode accepted is a batch:
// Decode returned its device id only, and NextReading returns its
// readings.
func (d *Decoder) Batched() bool { return d.batchAt != 0 }

// batch finishes Decode for a message with readings. beside says the
// message also has a ts, seq or metric of its own.
func (d *Decoder) batch(beside bool) (*Record, error) {
	if beside {
		d.semantic(ReasonInvalidReadings, d.batchAt, "a message with readings has ts, seq and metrics in each reading, not beside them")
	}
	if d.semErr != nil {
		d.batchAt = 0
		return nil, d.semErr
	}
	if d.rec.DeviceID == nil {
		d.batchAt = 0
		return nil, &Error{Reason: ReasonMissingDeviceID, Offset: len(d.data), Detail: "no device_id field"}
	}
	d.shapes.refund()
	if i := d.ws(d.batchAt + 1); d.data[i] == ']' {
		d.batchAt = 0
		return nil, &Error{Reason: ReasonNoMetrics, Offset: i, Detail: "no readings"}
	}
	d.batchPos, d.batchN = d.batchAt+1, 0
	return &d.rec, nil
}

// NextReading decodes the next reading of the batch the last Decode
// accepted: a record with the message's device id, or the reading's
// error, whose Detail starts with its index. ok is false after the last
// reading. Like Decode's, the record is valid until the next call.
func (d *Decoder) NextReading(refMs int64) (rec *Record, ok bool, err error) {
	if d.batchAt == 0 {
		return nil, false, nil
	}
	data := d.data
	i := d.ws(d.batchPos)
	if i < len(data) && data[i] == ',' {
		i = d.ws(i + 1)
	}
	if i >= len(data) || data[i] == ']' {
		d.batchAt = 0
		return nil, false, nil
	}
	r := &d.rec
	start, n := i, d.batchN
	r.Time, r.Seq, r.Reading, r.Metrics = 0, -1, n, r.Metrics[:0]
	d.semErr = nil
	d.batchN++
	haveTS := false
	if data[i] != '{' {
		d.semantic(ReasonInvalidReadings, i, "a reading must be an object")
		i = d.skip(i, 0)
	} else {
		haveTS, i = d.reading(i, refMs)
	}
	d.batchPos, d.readingAt = i, [2]int{start, i}
	if d.synErr != nil {
		// Decode checked the syntax of the whole array.
		d.batchAt = 0
		return nil, true, d.synErr
	}
	if d.semErr == nil {
		switch {
		case !haveTS:
			d.semantic(ReasonMissingTS, i, "no ts field")
		case len(r.Metrics) == 0:
			d.semantic(ReasonNoMetrics, i, "no numeric metric in the reading")
		}
	}
	if e := d.semErr; e != nil {
		return nil, true, &Error{Reason: e.Reason, Offset: e.Offset, Detail: "readings[" + strconv.Itoa(n) + "]: " + e.Detail}
	}
	return r, true, nil
}

// BatchDeviceID returns the device id of the batch being read.
func (d *Decoder) BatchDeviceID() []byte { return d.rec.DeviceID }

// Reading returns the bytes of the last reading NextReading returned.
func (d *Decoder) Reading() []byte { return d.data[d.readingAt[0]:d.readingAt[1]] }

// reading decodes the reading object at i into the record and reports
// whether it has a ts, and where it ends.
func (d *Decoder) reading(i int, refMs int64) (bool, int) {
	data, r := d.data, &d.rec
	haveTS, haveMetrics := false, false
	i = d.ws(i + 1)
	if i < len(data) && data[i] == '}' {
		return false, i + 1
	}
	for {
		keyAt := i
		var key []byte
		if key, i = d.key(i); d.synErr != nil {
			return haveTS, i
		}
		i = d.ws(i)
		switch string(key) {
		case "ts":
			if haveTS {
				d.semantic(ReasonDuplicateKey, keyAt, `duplicate key "ts"`)
			}
			haveTS = true
			i = d.ts(i, refMs)
		case "seq":
			if r.Seq != -1 {
				d.semantic(ReasonDuplicateKey, keyAt, `duplicate key "seq"`)
			}
			i = d.seq(i)
		case "metrics":
			if haveMetrics {
				d.semantic(ReasonDuplicateKey, keyAt, `duplicate key "metrics"`)
			}
			haveMetrics = true
			i = d.metricsObject(i, keyAt)
		case "device_id", "readings":
			d.semantic(ReasonInvalidReadings, keyAt, string(key)+" belongs to the message, not to a reading")
			i = d.skip(i, 0)
		default:
			i = d.other(key, keyAt, i)
		}
		if d.synErr != nil {
			return haveTS, i
		}
		var done bool
		if i, done = d.memberEnd(i); done || d.synErr != nil {
			return haveTS, i
		}
	}
}
