package alert

import (
	"bytes"
	"encoding/json"
	"math"
)

// lookup walks a reported document along a property path.
func lookup(doc map[string]any, path []string) (any, bool) {
	var v any = doc
	for _, name := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[name]; !ok {
			return nil, false
		}
	}
	return v, true
}

// canonical is the JSON text of a value with numbers in one form, so that
// equal values compare equal whether they were decoded as json.Number or
// float64.
func canonical(v any) (string, error) {
	b, err := json.Marshal(normalize(v))
	return string(b), err
}

func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, err := x.Float64()
		if err != nil || math.IsInf(f, 0) {
			return x.String()
		}
		return normalizeFloat(f)
	case float64:
		return normalizeFloat(x)
	case float32:
		return normalizeFloat(float64(x))
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = normalize(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = normalize(e)
		}
		return s
	}
	return v
}

// normalizeFloat writes whole numbers as integers, as json.Number's do.
func normalizeFloat(f float64) any {
	if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return int64(f)
	}
	return f
}

// decodeCanonical turns canonical JSON back into a JSON value.
func decodeCanonical(s string) any {
	if s == "" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	return v
}
