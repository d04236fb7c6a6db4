package telemetry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A chunk packs the readings of one metric into a byte string, point after
// point, each point relative to the one before it:
//
//   - timestamp (Unix ms): zigzag varint of the delta-of-delta. A steady 1 Hz
//     series costs one byte per point. The first point's delta is taken from 0
//     and the second's delta-of-delta from 0, so a chunk needs no header.
//   - value: most sensor values are short decimals (21.37), so the value is
//     stored as an integer m at a decimal scale k (value = m / 10^k). While k
//     stays the same, the point is the zigzag varint of (m - previous m) shifted
//     left once (low bit 0): one byte for slow-moving values. Otherwise a varint
//     tag (kind<<1 | 1) says the new scale (kind 0..maxScale, followed by the
//     zigzag varint of m) or a raw float64 (kindRaw, followed by 8 bytes).
//
// Points may arrive out of time order (device timestamps); deltas are signed.

const (
	maxScale = 9
	kindRaw  = 15
	// ChunkPoints is how many readings a chunk holds before it is sealed.
	ChunkPoints = 1000
	// chunkBytes seals a chunk early if its values do not compress.
	chunkBytes = 12 * 1024
)

var pow10 = [maxScale + 1]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// chunkEncoder appends points to a chunk. The zero value is an empty chunk.
type chunkEncoder struct {
	data      []byte
	n         int
	startTS   int64 // smallest timestamp
	endTS     int64 // largest timestamp
	min, max  float64
	sum       float64
	prevTS    int64
	prevDelta int64
	prevM     int64
	prevK     int // -1 after a raw value
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// decimal finds m and k with m / 10^k == v exactly, trying scale try first.
func decimal(v float64, try int) (int64, int, bool) {
	if v == 0 && math.Signbit(v) {
		return 0, 0, false // -0 would decode as +0
	}
	if try >= 0 {
		if m, ok := atScale(v, try); ok {
			return m, try, true
		}
	}
	for k := 0; k <= maxScale; k++ {
		if k == try {
			continue
		}
		if m, ok := atScale(v, k); ok {
			return m, k, true
		}
	}
	return 0, 0, false
}

func atScale(v float64, k int) (int64, bool) {
	x := v * pow10[k]
	if !(math.Abs(x) < 1<<53) { // also false for NaN
		return 0, false
	}
	r := math.Round(x)
	if r/pow10[k] != v {
		return 0, false
	}
	return int64(r), true
}

// add appends one point.
func (c *chunkEncoder) add(ts int64, v float64) {
	if c.n == 0 {
		c.startTS, c.endTS, c.min, c.max = ts, ts, v, v
		c.prevK = -1
	} else {
		c.startTS, c.endTS = min(c.startTS, ts), max(c.endTS, ts)
		c.min, c.max = min(c.min, v), max(c.max, v)
	}
	c.sum += v
	delta := ts - c.prevTS
	c.data = binary.AppendUvarint(c.data, zigzag(delta-c.prevDelta))
	if c.n == 0 {
		delta = 0
	}
	c.prevTS, c.prevDelta = ts, delta

	m, k, ok := decimal(v, c.prevK)
	switch {
	case ok && k == c.prevK:
		c.data = binary.AppendUvarint(c.data, zigzag(m-c.prevM)<<1)
		c.prevM = m
	case ok:
		c.data = binary.AppendUvarint(c.data, uint64(k)<<1|1)
		c.data = binary.AppendUvarint(c.data, zigzag(m))
		c.prevM, c.prevK = m, k
	default:
		c.data = binary.AppendUvarint(c.data, kindRaw<<1|1)
		c.data = binary.LittleEndian.AppendUint64(c.data, math.Float64bits(v))
		c.prevK = -1
	}
	c.n++
}

// full reports whether the chunk should be sealed.
func (c *chunkEncoder) full() bool { return c.n >= ChunkPoints || len(c.data) >= chunkBytes }

var errCorruptChunk = errors.New("corrupt reading chunk")

// decodeChunk calls fn for each of the n points in data, in stored order.
func decodeChunk(data []byte, n int, fn func(ts int64, v float64)) error {
	var prevTS, prevDelta, prevM int64
	prevK := -1
	pos := 0
	next := func() (uint64, bool) {
		u, w := binary.Uvarint(data[pos:])
		if w <= 0 {
			return 0, false
		}
		pos += w
		return u, true
	}
	for i := 0; i < n; i++ {
		u, ok := next()
		if !ok {
			return fmt.Errorf("%w: timestamp %d of %d", errCorruptChunk, i, n)
		}
		delta := unzigzag(u) + prevDelta
		ts := prevTS + delta
		if i == 0 {
			delta = 0
		}
		prevTS, prevDelta = ts, delta
		if u, ok = next(); !ok {
			return fmt.Errorf("%w: value %d of %d", errCorruptChunk, i, n)
		}
		var v float64
		switch {
		case u&1 == 0:
			if prevK < 0 {
				return fmt.Errorf("%w: value %d of %d is a delta without a scale", errCorruptChunk, i, n)
			}
			prevM += unzigzag(u >> 1)
			v = float64(prevM) / pow10[prevK]
		case u>>1 <= maxScale:
			k := int(u >> 1)
			mu, ok := next()
			if !ok {
				return fmt.Errorf("%w: value %d of %d", errCorruptChunk, i, n)
			}
			prevM, prevK = unzigzag(mu), k
			v = float64(prevM) / pow10[k]
		case u>>1 == kindRaw:
			if len(data)-pos < 8 {
				return fmt.Errorf("%w: value %d of %d is cut short", errCorruptChunk, i, n)
			}
			v = math.Float64frombits(binary.LittleEndian.Uint64(data[pos:]))
			pos += 8
			prevK = -1
		default:
			return fmt.Errorf("%w: value %d of %d has unknown kind %d", errCorruptChunk, i, n, u>>1)
		}
		fn(ts, v)
	}
	return nil
}

// EncodeChunk packs points, in the order given, into a chunk numbered no,
// with its summary. It is for a storage that derives readings itself rather
// than reading them from stored chunks (telemetry/postgres: readings that
// another instance logged and holds in memory until its checkpoint).
func EncodeChunk(no int64, pts []Point) Chunk {
	var c chunkEncoder
	for _, p := range pts {
		c.add(p.TS, p.Value)
	}
	return c.snapshot(no)
}
