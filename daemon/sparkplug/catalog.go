package sparkplug

import (
	"cmp"
	"slices"

	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// def declares one metric: its name, datatype, alias and, for births, its
// engineering unit (the "engUnit" property Ignition shows with the tag).
type def struct {
	name  string
	dt    sppb.DataType
	alias uint64
	unit  string
}

// Node metrics (NBIRTH, NDATA, NCMD). Aliases 1..99.
const (
	nBdSeq = iota
	nRebirth
	nReboot
	nVersion
	nModelID
	nBackbone
	nFeatures
	nImageThreshold
	nPixelThreshold
	nCamera
	nStartedAt
	nRecipe // after the others: their aliases stay as they were
	numNode
)

// Device metrics (DBIRTH, DDATA, DCMD). Aliases from 100.
const (
	dScore = iota
	dThreshold
	dNormalized
	dAnomalous
	dVerdict
	dSeq
	dTriggerID
	dError
	dModelID
	dRate
	dAnomalousCount
	dErrorCount
	dLatencyQueue
	dLatencyPreprocess
	dLatencyBackbone
	dLatencyPaDiM
	dLatencyMap
	dLatencyPublish
	dCameraConnected
	dCameraError
	dAlarmSeq
	dAlarmScore
	dAlarmRegions
	dAlarmWidth
	dAlarmHeight
	dMask
	dTrigger
	dRefit
	dRefitFrames
	dLastCommand
	dLastID
	dLastOK
	dLastReply
	dFile // after the others: their aliases stay as they were
	numDevice
)

// nodeDefs and deviceDefs are the metric reference (README "Sparkplug B").
func nodeDefs() [numNode]def {
	return [numNode]def{
		nBdSeq:          {name: "bdSeq", dt: sppb.TypeInt64},
		nRebirth:        {name: "Node Control/Rebirth", dt: sppb.TypeBoolean},
		nReboot:         {name: "Node Control/Reboot", dt: sppb.TypeBoolean},
		nVersion:        {name: "Properties/Version", dt: sppb.TypeString},
		nModelID:        {name: "Properties/Model ID", dt: sppb.TypeString},
		nBackbone:       {name: "Properties/Backbone", dt: sppb.TypeString},
		nFeatures:       {name: "Properties/Features", dt: sppb.TypeInt32},
		nImageThreshold: {name: "Properties/Image Threshold", dt: sppb.TypeDouble},
		nPixelThreshold: {name: "Properties/Pixel Threshold", dt: sppb.TypeDouble},
		nCamera:         {name: "Properties/Camera", dt: sppb.TypeString},
		nStartedAt:      {name: "Properties/Started At", dt: sppb.TypeDateTime},
		nRecipe:         {name: "Properties/Recipe", dt: sppb.TypeString},
	}
}

func deviceDefs() [numDevice]def {
	return [numDevice]def{
		dScore:             {name: "Inspection/Score", dt: sppb.TypeDouble},
		dThreshold:         {name: "Inspection/Threshold", dt: sppb.TypeDouble},
		dNormalized:        {name: "Inspection/Normalized Score", dt: sppb.TypeDouble},
		dAnomalous:         {name: "Inspection/Anomalous", dt: sppb.TypeBoolean},
		dVerdict:           {name: "Inspection/Verdict", dt: sppb.TypeString},
		dSeq:               {name: "Inspection/Seq", dt: sppb.TypeUInt64},
		dTriggerID:         {name: "Inspection/Trigger ID", dt: sppb.TypeString},
		dError:             {name: "Inspection/Error", dt: sppb.TypeString},
		dModelID:           {name: "Inspection/Model ID", dt: sppb.TypeString},
		dRate:              {name: "Stats/Inspections per Second", dt: sppb.TypeDouble, unit: "1/s"},
		dAnomalousCount:    {name: "Stats/Anomalous Count", dt: sppb.TypeUInt64},
		dErrorCount:        {name: "Stats/Error Count", dt: sppb.TypeUInt64},
		dLatencyQueue:      {name: "Latency/Queue", dt: sppb.TypeDouble, unit: "ms"},
		dLatencyPreprocess: {name: "Latency/Preprocess", dt: sppb.TypeDouble, unit: "ms"},
		dLatencyBackbone:   {name: "Latency/Backbone", dt: sppb.TypeDouble, unit: "ms"},
		dLatencyPaDiM:      {name: "Latency/PaDiM", dt: sppb.TypeDouble, unit: "ms"},
		dLatencyMap:        {name: "Latency/Map", dt: sppb.TypeDouble, unit: "ms"},
		dLatencyPublish:    {name: "Latency/Publish", dt: sppb.TypeDouble, unit: "ms"},
		dCameraConnected:   {name: "Camera/Connected", dt: sppb.TypeBoolean},
		dCameraError:       {name: "Camera/Error", dt: sppb.TypeString},
		dAlarmSeq:          {name: "Last Alarm/Seq", dt: sppb.TypeUInt64},
		dAlarmScore:        {name: "Last Alarm/Score", dt: sppb.TypeDouble},
		dAlarmRegions:      {name: "Last Alarm/Regions", dt: sppb.TypeDataSet},
		dAlarmWidth:        {name: "Last Alarm/Image Width", dt: sppb.TypeInt32, unit: "px"},
		dAlarmHeight:       {name: "Last Alarm/Image Height", dt: sppb.TypeInt32, unit: "px"},
		dMask:              {name: "Mask", dt: sppb.TypeBytes},
		dTrigger:           {name: "Command/Trigger", dt: sppb.TypeString},
		dRefit:             {name: "Command/Refit", dt: sppb.TypeBoolean},
		dRefitFrames:       {name: "Command/Refit Frames", dt: sppb.TypeUInt32},
		dLastCommand:       {name: "Command/Last Command", dt: sppb.TypeString},
		dLastID:            {name: "Command/Last ID", dt: sppb.TypeString},
		dLastOK:            {name: "Command/Last OK", dt: sppb.TypeBoolean},
		dLastReply:         {name: "Command/Last Reply", dt: sppb.TypeString},
		dFile:              {name: "Inspection/File", dt: sppb.TypeString},
	}
}

// Latency stage names as the pipeline reports them (Result.LatencyMS keys).
var stageMetric = map[string]int{
	"queue": dLatencyQueue, "preprocess": dLatencyPreprocess, "backbone": dLatencyBackbone,
	"padim": dLatencyPaDiM, "map": dLatencyMap, "publish": dLatencyPublish,
}

// regionColumns are the columns of Last Alarm/Regions, in pixels of the
// inspected image, largest region first (the JSON alarm's regions).
var regionColumns = []string{"x", "y", "w", "h", "area_px"}

var regionTypes = []sppb.DataType{sppb.TypeInt32, sppb.TypeInt32, sppb.TypeInt32, sppb.TypeInt32, sppb.TypeInt32}

// metric is one metric's declaration and current state.
type metric struct {
	def
	props   *sppb.PropertySet // sent in births
	meta    *sppb.MetaData    // sent with the value (the mask's content type and size)
	omitted bool              // not part of this edge node (the mask when masks are off)
	val     sppb.Value
	null    bool
	ts      uint64 // when the value was captured, ms since the epoch
	dirty   bool   // changed since the last birth or data message
}

// catalog is the metrics of the edge node or of its device.
type catalog struct {
	m       []metric
	byName  map[string]int
	byAlias map[uint64]int
}

func newCatalog(defs []def, firstAlias uint64) catalog {
	c := catalog{m: make([]metric, len(defs)), byName: map[string]int{}, byAlias: map[uint64]int{}}
	for i, d := range defs {
		d.alias = firstAlias + uint64(i)
		c.m[i] = metric{def: d, null: true}
		if d.unit != "" {
			c.m[i].props = &sppb.PropertySet{Keys: []string{"engUnit"},
				Values: []sppb.PropertyValue{{Type: sppb.TypeString, Value: sppb.StringValue(d.unit)}}}
		}
		c.byName[d.name] = i
		c.byAlias[d.alias] = i
	}
	return c
}

// set records a value captured at ts (ms); an unchanged value is not
// sent again (Sparkplug reports by exception).
func (c *catalog) set(i int, v sppb.Value, ts uint64) {
	m := &c.m[i]
	if !m.null && m.val.Equal(v) {
		return
	}
	m.val, m.null, m.ts, m.dirty = v, false, ts, true
}

// put records a value and sends it in the next data message even when it
// equals the last one.
func (c *catalog) put(i int, v sppb.Value, ts uint64) {
	m := &c.m[i]
	m.val, m.null, m.ts, m.dirty = v, false, ts, true
}

// putBytes records a binary value, copied into the metric's own buffer
// (the caller reuses its own), and sends it in the next data message even
// when it equals the last one (a second part with the same mask is a new
// value).
func (c *catalog) putBytes(i int, b []byte, ts uint64) {
	m := &c.m[i]
	m.val, m.null, m.ts, m.dirty = sppb.BytesValue(append(m.val.Bytes[:0], b...)), false, ts, true
}

// setNull records that metric i has no value now.
func (c *catalog) setNull(i int, ts uint64) {
	m := &c.m[i]
	if m.null {
		return
	}
	m.val, m.null, m.ts, m.dirty = sppb.Value{}, true, ts, true
}

// lookup finds the metric a command names, by alias when it has one.
func (c *catalog) lookup(m *sppb.Metric) (int, bool) {
	var i int
	var ok bool
	if m.HasAlias {
		i, ok = c.byAlias[m.Alias]
		if ok && m.Name != "" && m.Name != c.m[i].name {
			return 0, false
		}
	} else {
		i, ok = c.byName[m.Name]
	}
	return i, ok && !c.m[i].omitted
}

// birth appends every metric with name, alias, datatype, timestamp (now
// for values never captured) and properties, and marks all as sent.
func (c *catalog) birth(out []sppb.Metric, now uint64) []sppb.Metric {
	start := len(out)
	for i := range c.m {
		m := &c.m[i]
		if m.omitted {
			continue
		}
		ts := m.ts
		if ts == 0 {
			ts = now
		}
		out = append(out, sppb.Metric{Name: m.name, Alias: m.alias, HasAlias: true, Timestamp: ts, DataType: m.dt,
			IsNull: m.null, Value: m.val, Properties: m.props, MetaData: m.metaFor()})
		m.dirty = false
	}
	chronological(out[start:])
	return out
}

// changes appends the metrics changed since the last birth or data
// message, by alias only (tck-id-payloads-alias-data-cmd-requirement), and
// marks them sent.
func (c *catalog) changes(out []sppb.Metric) []sppb.Metric {
	start := len(out)
	for i := range c.m {
		m := &c.m[i]
		if !m.dirty || m.omitted {
			continue
		}
		out = append(out, sppb.Metric{Alias: m.alias, HasAlias: true, Timestamp: m.ts, IsNull: m.null, Value: m.val, MetaData: m.metaFor()})
		m.dirty = false
	}
	chronological(out[start:])
	return out
}

func (m *metric) metaFor() *sppb.MetaData {
	if m.meta == nil || m.null {
		return nil
	}
	m.meta.Size = uint64(len(m.val.Bytes))
	return m.meta
}

// chronological orders metrics by timestamp, keeping the catalog order
// among equal ones: births and data messages list values in the order they
// were captured (tck-id-operational-behavior-data-publish-dbirth-order).
func chronological(ms []sppb.Metric) {
	slices.SortStableFunc(ms, func(a, b sppb.Metric) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
}
