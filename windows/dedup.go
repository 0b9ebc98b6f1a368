package windows

import (
	"math"
	"math/bits"

	"github.com/tapline/tapline/schemas"
)

// Duplicates are exact redeliveries: MQTT QoS 1 sends a message again
// when its acknowledgement is lost, and gateways retry uploads. They are
// recognised per device in 24 bytes (device.recent), without touching
// anything on the common path but that:
//
//   - A device that numbers its records (seq) gets an anti-replay window
//     as in IPsec (RFC 4303, 3.4.3): the largest seq seen and a bitmap of
//     the 64 below it. A seq in the window that was seen is a duplicate.
//     One far below the window means the device restarted its count: the
//     window starts again there.
//   - Otherwise a record is identified by its event time and content (the
//     series and value of each metric, in any order), and the device's
//     last three records are remembered. A duplicate carries an event
//     time the device already sent, so a record later than the device's
//     latest is only remembered, never compared.
//
// Redeliveries from further back than that are aggregated again.

// seqWindow is how many sequence numbers below the largest are tracked.
const seqWindow = 64

// seenSeq reports whether seq was seen, and records it if not.
func (d *device) seenSeq(seq int64) bool {
	if !d.bySeq {
		d.bySeq, d.recent = true, [3]uint64{uint64(seq), 0, 0}
		return false
	}
	top := int64(d.recent[0])
	switch behind := top - seq; {
	case behind < 0: // a new largest: slide the window up
		shift := uint64(-behind)
		if shift > seqWindow {
			d.recent[1] = 0
		} else {
			d.recent[1] = d.recent[1]<<shift | 1<<(shift-1)
		}
		d.recent[0] = uint64(seq)
		return false
	case behind == 0:
		return true
	case behind <= seqWindow:
		bit := uint64(1) << (behind - 1)
		seen := d.recent[1]&bit != 0
		d.recent[1] |= bit
		return seen
	default: // far below: the device's count restarted
		d.recent[0], d.recent[1] = uint64(seq), 0
		return false
	}
}

// seenRecord reports whether a record at ts with fingerprint fp is one
// of the device's last three, and remembers it if not.
func (d *device) seenRecord(ts int64, fp uint64) bool {
	if d.bySeq {
		d.bySeq, d.recent = false, [3]uint64{}
	}
	if ts <= d.last && (d.recent[0] == fp || d.recent[1] == fp || d.recent[2] == fp) {
		return true
	}
	d.recent[2], d.recent[1], d.recent[0] = d.recent[1], d.recent[0], fp
	return false
}

// fingerprint hashes a record's event time and content: each metric's
// series and value, summed so that their order does not matter. Never 0,
// which marks an empty slot.
func fingerprint(ts int64, sis []uint32, metrics []schemas.Metric) uint64 {
	h := mix(uint64(ts))
	for k, si := range sis {
		h += mix(uint64(si)<<40 ^ math.Float64bits(metrics[k].Value))
	}
	return h | 1
}

// mix is a 64-bit finaliser (from MurmurHash3's fmix64 constants).
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	return x ^ bits.RotateLeft64(x, 31)
}
