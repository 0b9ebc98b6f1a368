package schemas_test

import (
	"fmt"

	"github.com/tapline/tapline/schemas"
)

func ExampleDecoder_Decode() {
	d := schemas.NewDecoder(schemas.Options{})
	rec, err := d.Decode([]byte(`{"device_id":"keg-0042","ts":"2024-11-27T12:59:05.123Z","metrics":{"flow_lpm":3.2},"temp_c":4.1}`), 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s at %d:", rec.DeviceID, rec.Time)
	for _, m := range rec.Metrics {
		fmt.Printf(" %s=%g", m.Name, m.Value)
	}
	fmt.Println()

	_, err = d.Decode([]byte(`{"device_id":"../etc","ts":1,"v":1}`), 0)
	fmt.Println(err)
	// Output:
	// keg-0042 at 1732712345123: flow_lpm=3.2 temp_c=4.1
	// invalid_device_id at byte 13: device_id must be 1-128 characters of [a-zA-Z0-9:_-]
}
