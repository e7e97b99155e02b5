// Vital-signs early warning: scores heart rate, respiration rate, SpO2 and
// temperature on early-warning bands and sends an alert to the `alerts`
// output when the total reaches the threshold (the step's `config`, 5 by
// default). An event without one of the fields is refused with the reason.
//
// JSON goes through github.com/valyala/fastjson (no reflection, a parser
// reused across events): encoding/json costs about 20 µs per event here,
// since Go's WebAssembly port runs reflection-heavy code slowly.
//
// Build: `weir plugin build`; test: `weir plugin test . --input
// sample/input.ndjson --expect sample/expected.ndjson`.
package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"

	"{{name}}/weir"
)

// A scale: the bands' upper edges, and the points of each band (one more,
// for values above the last edge).
type scale struct {
	field  string
	edges  []float64
	points []int
}

var scales = []scale{
	{"hr", []float64{40, 50, 90, 110, 130}, []int{3, 1, 0, 1, 2, 3}},
	{"rr", []float64{8, 11, 20, 24}, []int{3, 1, 0, 2, 3}},
	{"spo2", []float64{91, 93, 95}, []int{3, 2, 1, 0}},
	{"temp", []float64{35.0, 36.0, 38.0, 39.0}, []int{3, 1, 0, 1, 2}},
}

// points for value: the first band whose upper edge is at or above it.
func (s *scale) score(value float64) int {
	i := 0
	for i < len(s.edges) && value > s.edges[i] {
		i++
	}
	return s.points[i]
}

type vitalsAlert struct {
	threshold int
	parser    fastjson.Parser
	arena     fastjson.Arena
	buf       []byte
}

func (p *vitalsAlert) check(event *weir.Event, out *weir.Outcomes) error {
	v, err := p.parser.ParseBytes(event.Payload)
	if err != nil {
		return fmt.Errorf("invalid event: %v", err)
	}
	patient := v.Get("patient")
	if patient == nil {
		return fmt.Errorf("missing field `patient`")
	}
	if patient.Type() != fastjson.TypeString {
		return fmt.Errorf("field `patient` is not a string")
	}
	total := 0
	for i := range scales {
		s := &scales[i]
		field := v.Get(s.field)
		if field == nil {
			return fmt.Errorf("missing field `%s`", s.field)
		}
		if field.Type() != fastjson.TypeNumber {
			return fmt.Errorf("field `%s` is not a number", s.field)
		}
		total += s.score(field.GetFloat64())
	}
	if total >= p.threshold {
		level := "medium"
		if total >= 7 {
			level = "high"
		}
		p.arena.Reset()
		alert := p.arena.NewObject()
		alert.Set("patient", patient)
		alert.Set("score", p.arena.NewNumberInt(total))
		alert.Set("level", p.arena.NewString(level))
		p.buf = alert.MarshalTo(p.buf[:0])
		out.Emit(event, p.buf, "alerts")
	}
	return nil
}

func (p *vitalsAlert) Process(batch []weir.Event, out *weir.Outcomes) {
	for i := range batch {
		if err := p.check(&batch[i], out); err != nil {
			out.Reject(&batch[i], err.Error())
		}
	}
}

func init() {
	weir.Export(func(config string) (weir.Processor, error) {
		text := strings.TrimSpace(config)
		if text == "" {
			return &vitalsAlert{threshold: 5}, nil
		}
		threshold, err := strconv.Atoi(text)
		if err != nil {
			return nil, fmt.Errorf("config: the threshold must be a whole number, not `%s`", text)
		}
		return &vitalsAlert{threshold: threshold}, nil
	})
}

// main is not called: the host calls the plugin's exports.
func main() {}
