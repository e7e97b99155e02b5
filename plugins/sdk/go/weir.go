// Package weir is the Go SDK for Weir plugins: events in, outcomes out.
//
// A plugin registers a constructor with Export from its main package's init
// function; the constructor gets the step's config and returns the
// Processor that handles every batch:
//
//	func init() { weir.Export(func(config string) (weir.Processor, error) { return &identity{}, nil }) }
//
//	func (identity) Process(batch []weir.Event, out *weir.Outcomes) {
//		for i := range batch {
//			out.Forward(&batch[i], weir.MainOutput)
//		}
//	}
//
// Go has no component bindings generator for `GOOS=wasip1`, so this file is
// the binding: it implements the canonical ABI of the `processor` world by
// hand (`init`, `process` and `cabi_realloc` exports, the `host.log` and
// `host.counter-add` imports). `weir plugin build` compiles the module with
// `-buildmode=c-shared` and wraps it into a component with the WASI
// preview1 adapter.
package weir

import (
	"runtime"
	"runtime/debug"
	"unsafe"
)

// MainOutput is the output that feeds the pipeline's next step.
const MainOutput = "out"

// Event is one input event. Payload is a view into the batch's buffer,
// valid only during Process.
type Event struct {
	Index       uint32
	Payload     []byte
	TimestampMs int64
}

// Processor handles batches of events, in order.
type Processor interface {
	Process(batch []Event, out *Outcomes)
}

// Outcomes collects what the plugin does with each event.
type Outcomes struct {
	outputs  []string
	payloads []byte
	ends     []uint32
	inputs   []uint32
	ports    []uint16
	rejected []rejection
}

type rejection struct {
	input  uint32
	reason string
}

// Emit sends payload (one JSON object) to output, derived from event.
func (o *Outcomes) Emit(event *Event, payload []byte, output string) {
	o.payloads = append(o.payloads, payload...)
	o.push(event, output)
}

// Forward sends event on unchanged: no bytes cross the boundary.
func (o *Outcomes) Forward(event *Event, output string) {
	o.push(event, output)
}

// Reject refuses event: it goes to the dead-letter output with reason.
func (o *Outcomes) Reject(event *Event, reason string) {
	o.rejected = append(o.rejected, rejection{event.Index, reason})
}

func (o *Outcomes) push(event *Event, output string) {
	port := -1
	for i, name := range o.outputs {
		if name == output {
			port = i
			break
		}
	}
	if port < 0 {
		o.outputs = append(o.outputs, output)
		port = len(o.outputs) - 1
	}
	o.ends = append(o.ends, uint32(len(o.payloads)))
	o.inputs = append(o.inputs, event.Index)
	o.ports = append(o.ports, uint16(port))
}

// Export registers the plugin's constructor. Call it from an init function.
func Export(constructor func(config string) (Processor, error)) {
	newPlugin = constructor
}

// Level of a log line.
type Level uint32

const (
	Trace Level = iota
	Debug
	Info
	Warn
	Error
)

// Log writes a line to the host's log under the plugin's step name.
func Log(level Level, message string) {
	b := []byte(message)
	hostLog(uint32(level), addr(b), uint32(len(b)))
	runtime.KeepAlive(b)
}

// CounterAdd adds value to the plugin's counter name.
func CounterAdd(name string, value uint64) {
	b := []byte(name)
	hostCounterAdd(addr(b), uint32(len(b)), value)
	runtime.KeepAlive(b)
}

//go:wasmimport weir:plugin/host@0.1.2 log
func hostLog(level, ptr, length uint32)

//go:wasmimport weir:plugin/host@0.1.2 counter-add
func hostCounterAdd(ptr, length uint32, value uint64)

var (
	newPlugin func(config string) (Processor, error)
	plugin    Processor
	// The host copies each call's arguments into memory it gets from
	// cabi_realloc, where the component model forbids calling the host —
	// and Go's collector reads the host's clock. So arguments go into an
	// arena allocated while calls are allowed (at start and after each
	// call, sized to twice the largest call seen), and only an argument
	// larger than the arena is allocated in cabi_realloc, with the collector
	// paused.
	arena     = make([]uint64, 1<<17) // 1 MiB
	arenaUsed uint32
	requested uint32
	pending   []any
	// What the last call returned, kept alive until the host has read it
	// (the next call releases it). Go's collector does not move objects, so
	// an address handed to the host stays valid while this holds the object.
	retained []any
	events   []Event
)

// endCall releases the call's arguments and makes the arena big enough for
// one twice the size of this call's.
func endCall() {
	if uint64(requested)*2 > uint64(len(arena))*8 {
		arena = make([]uint64, uint64(requested)*2/8+1)
	}
	arenaUsed, requested, pending = 0, 0, nil
}

func addr[T any](s []T) uint32 {
	if len(s) == 0 {
		return 8 // any aligned address: the host reads nothing
	}
	return uint32(uintptr(unsafe.Pointer(&s[0])))
}

func at[T any](ptr, length uint32) []T {
	if length == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(uintptr(ptr))), length)
}

//go:wasmexport cabi_realloc
func cabiRealloc(old, oldSize, align, newSize uint32) uint32 {
	if newSize == 0 {
		return align
	}
	requested += newSize + align
	var ptr uint32
	start := (arenaUsed + align - 1) &^ (align - 1) // the arena's base is 8-byte aligned
	if uint64(start)+uint64(newSize) <= uint64(len(arena))*8 {
		ptr = addr(arena) + start
		arenaUsed = start + newSize
	} else {
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
		buf := make([]uint64, (newSize+7)/8) // 8-byte aligned, enough for any element
		pending = append(pending, buf)
		ptr = addr(buf)
	}
	if oldSize > 0 {
		copy(at[byte](ptr, newSize), at[byte](old, min(oldSize, newSize)))
	}
	return ptr
}

//go:wasmexport init
func exportInit(ptr, length uint32) uint32 {
	retained = nil
	config := string(at[byte](ptr, length))
	endCall()
	area := make([]uint32, 3) // result<_, string>: tag, then the error's pointer and length
	if newPlugin == nil {
		return fail(area, "weir: no plugin registered: call weir.Export in an init function")
	}
	p, err := newPlugin(config)
	if err != nil {
		return fail(area, err.Error())
	}
	plugin = p
	retained = append(retained, area)
	return addr(area)
}

func fail(area []uint32, message string) uint32 {
	b := []byte(message)
	area[0], area[1], area[2] = 1, addr(b), uint32(len(b))
	retained = append(retained, area, b)
	return addr(area)
}

//go:wasmexport process
func exportProcess(payloadsPtr, payloadsLen, endsPtr, endsLen, timesPtr, timesLen uint32) uint32 {
	retained = nil
	payloads := at[byte](payloadsPtr, payloadsLen)
	ends := at[uint32](endsPtr, endsLen)
	times := at[int64](timesPtr, timesLen)
	events = events[:0]
	start := uint32(0)
	for i, end := range ends {
		events = append(events, Event{Index: uint32(i), Payload: payloads[start:end], TimestampMs: times[i]})
		start = end
	}
	out := &Outcomes{outputs: []string{MainOutput}, payloads: make([]byte, 0, len(payloads))}
	plugin.Process(events, out)
	events = events[:0] // the events point into the arena
	endCall()
	return out.lower()
}

// lower writes the outcomes record in the canonical ABI's memory layout:
// outputs (list<string>), emitted (four lists), rejected (list<rejection>),
// each list a pointer and a length: twelve 32-bit words.
func (o *Outcomes) lower() uint32 {
	names := make([]uint32, 0, 2*len(o.outputs))
	for _, name := range o.outputs {
		b := []byte(name)
		retained = append(retained, b)
		names = append(names, addr(b), uint32(len(b)))
	}
	rejected := make([]uint32, 0, 3*len(o.rejected))
	for _, r := range o.rejected {
		b := []byte(r.reason)
		retained = append(retained, b)
		rejected = append(rejected, r.input, addr(b), uint32(len(b)))
	}
	area := []uint32{
		addr(names), uint32(len(o.outputs)),
		addr(o.payloads), uint32(len(o.payloads)),
		addr(o.ends), uint32(len(o.ends)),
		addr(o.inputs), uint32(len(o.inputs)),
		addr(o.ports), uint32(len(o.ports)),
		addr(rejected), uint32(len(o.rejected)),
	}
	retained = append(retained, names, rejected, area, o.payloads, o.ends, o.inputs, o.ports)
	return addr(area)
}
