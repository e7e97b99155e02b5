// Vital-signs early warning: scores heart rate, respiration rate, SpO2 and
// temperature on early-warning bands and sends an alert to the `alerts`
// output when the total reaches the threshold (the step's `config`, 5 by
// default). An event without one of the fields is refused with the reason.
//
// Build: `weir plugin build`; test: `weir plugin test . --input
// sample/input.ndjson --expect sample/expected.ndjson`.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"{{name}}/weir"
)

type band struct {
	edge   float64
	points int
}

var (
	hrBands   = []band{{40, 3}, {50, 1}, {90, 0}, {110, 1}, {130, 2}, {math.Inf(1), 3}}
	rrBands   = []band{{8, 3}, {11, 1}, {20, 0}, {24, 2}, {math.Inf(1), 3}}
	spo2Bands = []band{{91, 3}, {93, 2}, {95, 1}, {math.Inf(1), 0}}
	tempBands = []band{{35.0, 3}, {36.0, 1}, {38.0, 0}, {39.0, 1}, {math.Inf(1), 2}}
)

// points for value: the first band whose upper edge is at or above it.
func points(value float64, bands []band) int {
	for _, b := range bands {
		if value <= b.edge {
			return b.points
		}
	}
	return 0
}

// vitals holds the fields the rule reads as raw JSON, so that a missing field
// and a field of the wrong type get different reasons.
type vitals struct {
	Patient json.RawMessage `json:"patient"`
	HR      json.RawMessage `json:"hr"`
	RR      json.RawMessage `json:"rr"`
	SpO2    json.RawMessage `json:"spo2"`
	Temp    json.RawMessage `json:"temp"`
}

type alert struct {
	Patient string `json:"patient"`
	Score   int    `json:"score"`
	Level   string `json:"level"`
}

func number(raw json.RawMessage, name string) (float64, error) {
	if raw == nil {
		return 0, fmt.Errorf("missing field `%s`", name)
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return 0, fmt.Errorf("field `%s` is not a number", name)
	}
	return strconv.ParseFloat(string(raw), 64)
}

func score(v *vitals) (int, error) {
	total := 0
	for _, f := range []struct {
		raw   json.RawMessage
		name  string
		bands []band
	}{{v.HR, "hr", hrBands}, {v.RR, "rr", rrBands}, {v.SpO2, "spo2", spo2Bands}, {v.Temp, "temp", tempBands}} {
		value, err := number(f.raw, f.name)
		if err != nil {
			return 0, err
		}
		total += points(value, f.bands)
	}
	return total, nil
}

type vitalsAlert struct {
	threshold int
}

func (p *vitalsAlert) check(event *weir.Event, out *weir.Outcomes) error {
	var v vitals
	if err := json.Unmarshal(event.Payload, &v); err != nil {
		return fmt.Errorf("invalid event: %v", err)
	}
	if v.Patient == nil {
		return fmt.Errorf("missing field `patient`")
	}
	var patient string
	if v.Patient[0] != '"' || json.Unmarshal(v.Patient, &patient) != nil {
		return fmt.Errorf("field `patient` is not a string")
	}
	total, err := score(&v)
	if err != nil {
		return err
	}
	if total >= p.threshold {
		level := "medium"
		if total >= 7 {
			level = "high"
		}
		payload, _ := json.Marshal(alert{patient, total, level})
		out.Emit(event, payload, "alerts")
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
