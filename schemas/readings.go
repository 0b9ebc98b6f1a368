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
// The whole message is refused for malformed JSON anywhere in it, a bad
// or missing device_id, or no readings; otherwise each reading stands
// alone: a bad one is rejected with its index (readings[3]: ...) and the
// others are kept.
//
// Decode parses the readings where it finds them, in the same pass as the
// rest of the message (device_id may come after them), into slots it
// reuses, so a batch costs one scan and no allocation.

// reading is one decoded reading of a batch.
type reading struct {
	time, seq int64
	metrics   []Metric // the slot's own storage, reused
	err       *Error   // why it is rejected; nil if it is not
	span      [2]int   // its bytes in the message
}

// Batched reports whether the message the last Decode accepted is a batch:
// Decode returned its device id only, and NextReading returns its
// readings.
func (d *Decoder) Batched() bool { return d.batched }

// readingsArray decodes the readings array at i into d.readings and
// returns where it ends. Its syntax errors are the message's; anything
// else is the reading's.
func (d *Decoder) readingsArray(i int, refMs int64) int {
	data := d.data
	if i >= len(data) || data[i] != '[' {
		d.semantic(ReasonInvalidReadings, i, "readings must be an array of readings")
		d.nonJSON = true // still a value to skip, NaN and all
		i = d.skip(i, 0)
		d.nonJSON = false
		return i
	}
	d.batched, d.batchAt, d.nReadings = true, i, 0
	top, topErr := d.rec, d.semErr
	i = d.ws(i + 1)
	if i < len(data) && data[i] == ']' {
		return i + 1
	}
	for {
		if d.nReadings == len(d.readings) {
			d.readings = append(d.readings, reading{})
		}
		slot := &d.readings[d.nReadings]
		d.nReadings++
		d.rec = Record{Seq: -1, Reading: -1, Metrics: slot.metrics[:0]}
		d.semErr = nil
		start, haveTS := i, false
		if i < len(data) && data[i] == '{' {
			var hit bool
			if d.readingCache.off == 0 {
				hit, i = d.readingShapes(i, refMs, slot.metrics)
			} else {
				d.readingCache.off--
			}
			if hit {
				haveTS = true
			} else {
				d.rec = Record{Seq: -1, Reading: -1, Metrics: slot.metrics[:0]}
				learn := d.readingCache.off == 0
				d.recording, d.values = learn, d.values[:0]
				haveTS, i = d.reading(i, refMs)
				d.recording = false
				if learn && d.synErr == nil && d.semErr == nil && haveTS && len(d.rec.Metrics) > 0 {
					for k := range d.values {
						d.values[k].start -= uint32(start)
						d.values[k].end -= uint32(start)
					}
					d.readingCache.learn(data[start:i], d.values, d.rec.Metrics)
				}
			}
		} else {
			d.semantic(ReasonInvalidReadings, i, "a reading must be an object")
			d.nonJSON = true
			i = d.skip(i, 0)
			d.nonJSON = false
		}
		if d.synErr != nil {
			break
		}
		if d.semErr == nil {
			switch {
			case !haveTS:
				d.semantic(ReasonMissingTS, i, "no ts field")
			case len(d.rec.Metrics) == 0:
				d.semantic(ReasonNoMetrics, i, "no numeric metric in the reading")
			}
		}
		*slot = reading{time: d.rec.Time, seq: d.rec.Seq, metrics: d.rec.Metrics, err: d.semErr, span: [2]int{start, i}}
		i = d.ws(i)
		if i < len(data) && data[i] == ',' {
			i = d.ws(i + 1)
			continue
		}
		if i < len(data) && data[i] == ']' {
			i++
			break
		}
		d.syntax(i, "expected ',' or ']'")
		break
	}
	d.rec, d.semErr = top, topErr
	return i
}

// batch finishes Decode for a message with readings. beside says the
// message also has a ts, seq or metric of its own.
func (d *Decoder) batch(beside bool) (*Record, error) {
	if beside {
		d.semantic(ReasonInvalidReadings, d.batchAt, "a message with readings has ts, seq and metrics in each reading, not beside them")
	}
	err := d.semErr
	switch {
	case err != nil:
	case d.rec.DeviceID == nil:
		err = &Error{Reason: ReasonMissingDeviceID, Offset: len(d.data), Detail: "no device_id field"}
	case d.nReadings == 0:
		err = &Error{Reason: ReasonNoMetrics, Offset: d.batchAt, Detail: "no readings"}
	}
	if err != nil {
		d.batched = false
		return nil, err
	}
	d.shapes.refund()
	d.next = 0
	return &d.rec, nil
}

// NextReading returns the next reading of the batch the last Decode
// accepted: a record with the message's device id, or the reading's
// error, whose Detail starts with its index. ok is false after the last
// reading. The record is valid until the next call of either method.
func (d *Decoder) NextReading() (rec *Record, ok bool, err error) {
	if !d.batched || d.next == d.nReadings {
		return nil, false, nil
	}
	n := d.next
	d.next++
	slot := &d.readings[n]
	d.readingAt = slot.span
	if e := slot.err; e != nil {
		return nil, true, &Error{Reason: e.Reason, Offset: e.Offset, Detail: "readings[" + strconv.Itoa(n) + "]: " + e.Detail}
	}
	d.out = Record{DeviceID: d.rec.DeviceID, Time: slot.time, Seq: slot.seq, Reading: n, Metrics: slot.metrics}
	return &d.out, true, nil
}

// BatchDeviceID returns the device id of the batch being read.
func (d *Decoder) BatchDeviceID() []byte { return d.rec.DeviceID }

// Reading returns the bytes of the last reading NextReading returned.
func (d *Decoder) Reading() []byte { return d.data[d.readingAt[0]:d.readingAt[1]] }

// reading decodes the reading object at i into d.rec and reports whether
// it has a ts, and where it ends.
func (d *Decoder) reading(i int, refMs int64) (bool, int) {
	data := d.data
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
		valueAt, kind := i, valNone
		switch string(key) {
		case "ts", "seq", "metrics":
			kind, i = d.timeOrMetrics(string(key), keyAt, i, refMs, &haveTS, &haveMetrics)
		case "device_id", "readings":
			d.semantic(ReasonInvalidReadings, keyAt, string(key)+" belongs to the message, not to a reading")
			d.nonJSON = true
			i = d.skip(i, 0)
			d.nonJSON = false
		default:
			if i >= len(data) || !(data[i] == '-' || data[i] >= '0' && data[i] <= '9' || data[i] == 'N' || data[i] == 'I') {
				kind = valIgnored // a number is a metric, which records itself
			}
			i = d.other(key, keyAt, i)
		}
		if kind != valNone && d.recording {
			d.values = append(d.values, value{start: uint32(valueAt), end: uint32(i), kind: kind})
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
