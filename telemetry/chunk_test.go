package telemetry

import (
	"encoding/binary"
	"math"
	"testing"
)

type point struct {
	ts int64
	v  float64
}

func encode(pts []point) chunkEncoder {
	var c chunkEncoder
	for _, p := range pts {
		c.add(p.ts, p.v)
	}
	return c
}

func decodeAll(t testing.TB, c chunkEncoder) []point {
	t.Helper()
	var got []point
	if err := decodeChunk(c.data, c.n, func(ts int64, v float64) { got = append(got, point{ts, v}) }); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return got
}

func TestChunkRoundTrip(t *testing.T) {
	base := int64(1_767_225_600_000)
	tests := []struct {
		name         string
		pts          []point
		maxBytesEach float64 // upper bound on encoded bytes per point, 0 = unchecked
	}{
		{"steady 1 Hz decimals", steady(base, 1000, func(i int) float64 { return 21 + float64(i%7)/100 }), 2.1},
		{"constant", steady(base, 500, func(int) float64 { return 3 }), 2.1},
		{"integers", steady(base, 300, func(i int) float64 { return float64(i * 1000) }), 3.1},
		{"out of order timestamps", []point{{base, 1}, {base - 5000, 2}, {base + 70_000, 3}, {base + 1, -4.5}}, 0},
		{"raw floats", steady(base, 100, func(i int) float64 { return math.Pi * float64(i+1) / 7 }), 0},
		{"mixed scales", []point{{base, 1}, {base + 1, 1.5}, {base + 2, 1.25}, {base + 3, 1e-9}, {base + 4, 123456789.123456789}, {base + 5, 2}}, 0},
		{"extremes", []point{{base, math.MaxFloat64}, {base, -math.MaxFloat64}, {base, math.SmallestNonzeroFloat64}, {base, math.Copysign(0, -1)}, {base, 0}, {base, 1 << 60}}, 0},
		{"epoch and negative time", []point{{0, 1}, {-86400000, 2}, {1 << 50, 3}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := encode(tt.pts)
			got := decodeAll(t, c)
			if len(got) != len(tt.pts) {
				t.Fatalf("decoded %d points, want %d", len(got), len(tt.pts))
			}
			for i := range got {
				if got[i].ts != tt.pts[i].ts || math.Float64bits(got[i].v) != math.Float64bits(tt.pts[i].v) {
					t.Fatalf("point %d = %v, want %v", i, got[i], tt.pts[i])
				}
			}
			if per := float64(len(c.data)) / float64(len(tt.pts)); tt.maxBytesEach > 0 && per > tt.maxBytesEach {
				t.Errorf("%.2f bytes per point, want at most %.2f", per, tt.maxBytesEach)
			}
			lo, hi, sum := tt.pts[0].v, tt.pts[0].v, 0.0
			for _, p := range tt.pts {
				lo, hi, sum = min(lo, p.v), max(hi, p.v), sum+p.v
			}
			if c.min != lo || c.max != hi || c.sum != sum || c.n != len(tt.pts) {
				t.Errorf("summary n=%d min=%v max=%v sum=%v, want n=%d min=%v max=%v sum=%v", c.n, c.min, c.max, c.sum, len(tt.pts), lo, hi, sum)
			}
		})
	}
}

func steady(base int64, n int, v func(int) float64) []point {
	pts := make([]point, n)
	for i := range pts {
		pts[i] = point{base + int64(i)*1000, v(i)}
	}
	return pts
}

func TestDecodeChunkRejectsCorruptData(t *testing.T) {
	good := encode([]point{{1000, 1.5}, {2000, 2.5}})
	tests := []struct {
		name string
		data []byte
		n    int
	}{
		{"truncated", good.data[:len(good.data)-1], 2},
		{"more points than data", good.data, 3},
		{"delta without scale", append(binary.AppendUvarint(nil, 0), 4), 1},
		{"unknown kind", append(binary.AppendUvarint(nil, 0), binary.AppendUvarint(nil, 12<<1|1)...), 1},
		{"raw value cut short", append(binary.AppendUvarint(nil, 0), binary.AppendUvarint(nil, kindRaw<<1|1)...), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := decodeChunk(tt.data, tt.n, func(int64, float64) {}); err == nil {
				t.Errorf("decode succeeded, want an error")
			}
		})
	}
}

// FuzzChunk checks that any sequence of points survives the round trip and
// that decoding arbitrary bytes never panics.
func FuzzChunk(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, []byte{0, 4})
	f.Fuzz(func(t *testing.T, raw []byte, junk []byte) {
		var pts []point
		for len(raw) >= 16 {
			pts = append(pts, point{int64(binary.LittleEndian.Uint64(raw)) >> 8, math.Float64frombits(binary.LittleEndian.Uint64(raw[8:]))})
			raw = raw[16:]
		}
		c := encode(pts)
		got := decodeAll(t, c)
		for i := range got {
			if got[i].ts != pts[i].ts || math.Float64bits(got[i].v) != math.Float64bits(pts[i].v) {
				t.Fatalf("point %d = %v, want %v", i, got[i], pts[i])
			}
		}
		_ = decodeChunk(junk, len(junk), func(int64, float64) {})
	})
}
