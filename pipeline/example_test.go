package pipeline_test

import (
	"fmt"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

type printDeadLetters struct{}

func (printDeadLetters) Write(d *schemas.DeadLetter) error {
	fmt.Printf("dead letter %s: %s\n", d.Sequence, d.Reason)
	return nil
}

// A shard's loop: records in; windows, alerts and dead letters out.
func ExampleProcessor() {
	spec, _ := windows.ParseSpec("1m")
	cfg, _ := rules.Parse("rules.yml", []byte(`
rules:
  - name: hot
    kind: threshold
    metric: temp_c
    window: 1m
    above: 8
`))
	p, err := pipeline.NewProcessor(pipeline.Options{
		Shard:       "shardId-000000000000",
		Windows:     windows.Options{Specs: []windows.Spec{spec}},
		Rules:       cfg,
		DeadLetters: printDeadLetters{},
		OnWindow: func(w *windows.Window) {
			fmt.Printf("window %s %s mean=%g n=%d\n", w.DeviceID, w.Metric, w.Mean, w.Count)
		},
		OnAlert: func(a *rules.Alert) { fmt.Println(a.State, a.Message) },
	})
	if err != nil {
		panic(err)
	}
	for i, r := range []string{
		`{"device_id":"keg-1","ts":1732712400000,"temp_c":9}`,
		`{"device_id":"keg-1","ts":1732712430000,"temp_c":10}`,
		`{"device_id":"keg-1","ts":"yesterday","temp_c":10}`,
		`{"device_id":"keg-1","ts":1732712460000,"temp_c":4}`, // closes the first minute
	} {
		p.Process([]byte(r), fmt.Sprint(i+1), 0)
	}
	p.Flush()
	// Output:
	// dead letter 3: invalid_ts
	// window keg-1 temp_c mean=9.5 n=2
	// FIRING keg-1 temp_c mean 9.5 > 8 in 1 of the last 1 1m windows [hot]
	// window keg-1 temp_c mean=4 n=1
	// RESOLVED keg-1 temp_c mean 4 back at or below 8 [hot]
}
