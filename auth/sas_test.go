package auth

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// sasVectors mirrors testdata/sas_vectors.json, produced by the Azure IoT
// device SDK itself (see testdata/gen_sas_vectors.cjs).
type sasVectors struct {
	Keys    []string    `json:"keys"`
	Vectors []sasVector `json:"vectors"`
	Policy  sasVector   `json:"policyVector"`
}

type sasVector struct {
	Host     string `json:"host"`
	DeviceID string `json:"deviceId"`
	KeyIndex int    `json:"keyIndex"`
	Expiry   int64  `json:"expiry"`
	KeyName  string `json:"keyName"`
	Resource string `json:"resource"`
	Token    string `json:"token"`
}

func loadVectors(t *testing.T) sasVectors {
	t.Helper()
	data, err := os.ReadFile("testdata/sas_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v sasVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode sas_vectors.json: %v", err)
	}
	if len(v.Keys) != 2 || len(v.Vectors) == 0 {
		t.Fatalf("sas_vectors.json: got %d keys and %d vectors, want 2 keys and some vectors", len(v.Keys), len(v.Vectors))
	}
	return v
}

func TestSignSASMatchesSDK(t *testing.T) {
	v := loadVectors(t)
	for _, vec := range v.Vectors {
		t.Run(vec.DeviceID, func(t *testing.T) {
			got, err := SignSAS(vec.Resource, v.Keys[vec.KeyIndex], time.Unix(vec.Expiry, 0))
			if err != nil {
				t.Fatalf("SignSAS: %v", err)
			}
			if got != vec.Token {
				t.Errorf("SignSAS:\n got %s\nwant %s", got, vec.Token)
			}
		})
	}
}

func TestVerifySDKVectors(t *testing.T) {
	v := loadVectors(t)
	for _, vec := range append(v.Vectors, v.Policy) {
		t.Run(vec.DeviceID, func(t *testing.T) {
			tok, err := ParseSAS(vec.Token)
			if err != nil {
				t.Fatalf("ParseSAS: %v", err)
			}
			if got, want := tok.Expiry, time.Unix(vec.Expiry, 0); !got.Equal(want) {
				t.Errorf("Expiry: got %v, want %v", got, want)
			}
			if tok.KeyName != vec.KeyName {
				t.Errorf("KeyName: got %q, want %q", tok.KeyName, vec.KeyName)
			}
			now := time.Unix(vec.Expiry-60, 0)
			idx, err := tok.Verify(vec.DeviceID, v.Keys, now, []string{vec.Host})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if idx != vec.KeyIndex {
				t.Errorf("key index: got %d, want %d", idx, vec.KeyIndex)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	const (
		primary   = "xcZsAeMxKco0K53MG1YZnBLyUYqddElqPSw/PufMJjU="
		secondary = "oOnCuVe20MZMDr85/s1QvEMmIdwlaJkueBISAAUd6z4="
		other     = "8Tq+2Vx3vHcYt4g0mZ4cNn6c3tQ9r2b1fJmE5H4aX0k="
	)
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	tests := []struct {
		name      string
		resource  string
		key       string
		expiry    time.Time
		deviceID  string
		keys      []string
		hostnames []string
		wantIndex int
		wantErr   error
	}{
		{"primary key", "localhost:8883/devices/dev1", primary, later, "dev1", []string{primary, secondary}, nil, 0, nil},
		{"secondary key", "localhost:8883/devices/dev1", secondary, later, "dev1", []string{primary, secondary}, nil, 1, nil},
		{"secondary only", "localhost:8883/devices/dev1", secondary, later, "dev1", []string{"", secondary}, nil, 1, nil},
		{"wrong key", "localhost:8883/devices/dev1", other, later, "dev1", []string{primary, secondary}, nil, -1, ErrBadSignature},
		{"no keys", "localhost:8883/devices/dev1", primary, later, "dev1", nil, nil, -1, ErrBadSignature},
		{"expired", "localhost:8883/devices/dev1", primary, now.Add(-time.Second), "dev1", []string{primary, secondary}, nil, -1, ErrTokenExpired},
		{"expires exactly now", "localhost:8883/devices/dev1", primary, now, "dev1", []string{primary, secondary}, nil, -1, ErrTokenExpired},
		{"another device's token", "localhost:8883/devices/dev2", primary, later, "dev1", []string{primary, secondary}, nil, -1, ErrWrongDevice},
		{"device id prefix is not a segment", "localhost:8883/devices/dev10", primary, later, "dev1", []string{primary, secondary}, nil, -1, ErrWrongDevice},
		{"path below the device", "localhost:8883/devices/dev1/modules/m1", primary, later, "dev1", []string{primary, secondary}, nil, 0, nil},
		{"no devices segment", "localhost:8883/dev1", primary, later, "dev1", []string{primary, secondary}, nil, -1, ErrWrongDevice},
		{"hub-wide resource", "localhost:8883", primary, later, "dev1", []string{primary, secondary}, nil, -1, ErrMalformedToken},
		{"special characters", "localhost:8883/devices/dev'(1)*!%", primary, later, "dev'(1)*!%", []string{primary}, nil, 0, nil},
		{"host matches", "localhost:8883/devices/dev1", primary, later, "dev1", []string{primary}, []string{"example.org", "localhost"}, 0, nil},
		{"host matches with port", "localhost:8883/devices/dev1", primary, later, "dev1", []string{primary}, []string{"localhost:8883"}, 0, nil},
		{"host case-insensitive", "LocalHost/devices/dev1", primary, later, "dev1", []string{primary}, []string{"localhost"}, 0, nil},
		{"ipv6 host with port", "[::1]:8883/devices/dev1", primary, later, "dev1", []string{primary}, []string{"::1"}, 0, nil},
		{"wrong host", "evil.example/devices/dev1", primary, later, "dev1", []string{primary}, []string{"localhost"}, -1, ErrWrongHost},
		{"wrong port", "localhost:9999/devices/dev1", primary, later, "dev1", []string{primary}, []string{"localhost:8883"}, -1, ErrWrongHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := SignSAS(tt.resource, tt.key, tt.expiry)
			if err != nil {
				t.Fatalf("SignSAS: %v", err)
			}
			tok, err := ParseSAS(s)
			if err != nil {
				t.Fatalf("ParseSAS(%q): %v", s, err)
			}
			idx, err := tok.Verify(tt.deviceID, tt.keys, now, tt.hostnames)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error: got %v, want %v", err, tt.wantErr)
			}
			if idx != tt.wantIndex {
				t.Errorf("key index: got %d, want %d", idx, tt.wantIndex)
			}
		})
	}
}

func TestVerifyTamperedToken(t *testing.T) {
	const key = "xcZsAeMxKco0K53MG1YZnBLyUYqddElqPSw/PufMJjU="
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := SignSAS("localhost/devices/dev1", key, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		token   string
		wantErr error
	}{
		// Pushing the expiry out invalidates the signature.
		{"extended expiry", strings.Replace(s, "&se=", "&se=9", 1), ErrBadSignature},
		// The same resource encoded differently is different signed bytes.
		{"re-encoded sr", strings.Replace(s, "localhost%2Fdevices", "localhost/devices", 1), ErrBadSignature},
		{"signature not base64", strings.Replace(s, "&sig=", "&sig=%21%21", 1), ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ParseSAS(tt.token)
			if err != nil {
				t.Fatalf("ParseSAS(%q): %v", tt.token, err)
			}
			if _, err := tok.Verify("dev1", []string{key}, now, nil); !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify: got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestParseSAS(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    SASToken
		wantErr string // substring of the error; "" means success
	}{
		{
			name: "sdk order",
			in:   "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=YWJj%2B%3D&se=1700000000",
			want: SASToken{Resource: "h%2Fdevices%2Fd", Signature: "YWJj+=", Expiry: time.Unix(1700000000, 0)},
		},
		{
			name: "any order with skn",
			in:   "SharedAccessSignature se=1700000000&skn=my%20policy&sig=YWJj&sr=h%2Fdevices%2Fd",
			want: SASToken{Resource: "h%2Fdevices%2Fd", Signature: "YWJj", Expiry: time.Unix(1700000000, 0), KeyName: "my policy"},
		},
		{
			name: "unencoded plus in sig stays plus",
			in:   "SharedAccessSignature sr=h&sig=a+b=&se=1",
			want: SASToken{Resource: "h", Signature: "a+b=", Expiry: time.Unix(1, 0)},
		},
		{
			name: "unknown field ignored",
			in:   "SharedAccessSignature sr=h&sig=s&se=1&foo=bar",
			want: SASToken{Resource: "h", Signature: "s", Expiry: time.Unix(1, 0)},
		},
		{name: "empty", in: "", wantErr: "must start with"},
		{name: "no prefix", in: "sr=h&sig=s&se=1", wantErr: "must start with"},
		{name: "bearer", in: "Bearer abc", wantErr: "must start with"},
		{name: "lower-case prefix", in: "sharedaccesssignature sr=h&sig=s&se=1", wantErr: "must start with"},
		{name: "prefix only", in: "SharedAccessSignature ", wantErr: "no fields"},
		{name: "missing sr", in: "SharedAccessSignature sig=s&se=1", wantErr: "missing sr"},
		{name: "empty sr", in: "SharedAccessSignature sr=&sig=s&se=1", wantErr: "missing sr"},
		{name: "missing sig", in: "SharedAccessSignature sr=h&se=1", wantErr: "missing sig"},
		{name: "missing se", in: "SharedAccessSignature sr=h&sig=s", wantErr: "missing se"},
		{name: "se not a number", in: "SharedAccessSignature sr=h&sig=s&se=soon", wantErr: `se "soon"`},
		{name: "se negative", in: "SharedAccessSignature sr=h&sig=s&se=-5", wantErr: `se "-5"`},
		{name: "se leading zero", in: "SharedAccessSignature sr=h&sig=s&se=0170", wantErr: `se "0170"`},
		{name: "se fractional", in: "SharedAccessSignature sr=h&sig=s&se=17.5", wantErr: `se "17.5"`},
		{name: "field without equals", in: "SharedAccessSignature sr=h&sig&se=1", wantErr: `field "sig" has no '='`},
		{name: "duplicate sr", in: "SharedAccessSignature sr=h&sr=g&sig=s&se=1", wantErr: `"sr" appears twice`},
		{name: "bad sig escape", in: "SharedAccessSignature sr=h&sig=%zz&se=1", wantErr: "sig is not URL-encoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSAS(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrMalformedToken) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSAS(%q): got error %v, want ErrMalformedToken containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSAS(%q): %v", tt.in, err)
			}
			if got.Resource != tt.want.Resource || got.Signature != tt.want.Signature ||
				!got.Expiry.Equal(tt.want.Expiry) || got.KeyName != tt.want.KeyName {
				t.Errorf("ParseSAS(%q):\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestVerifyMalformedResource(t *testing.T) {
	tok := SASToken{Resource: "h%zz%2Fdevices%2Fd", Signature: "YWJj", Expiry: time.Unix(2000000000, 0)}
	_, err := tok.Verify("d", []string{"YWJj"}, time.Unix(1900000000, 0), nil)
	if !errors.Is(err, ErrMalformedToken) {
		t.Errorf("Verify: got %v, want ErrMalformedToken", err)
	}
}

func TestSignSASBadKey(t *testing.T) {
	if _, err := SignSAS("h/devices/d", "not base64!", time.Unix(1, 0)); err == nil {
		t.Error("SignSAS with a non-base64 key: got nil error, want one")
	}
}

func TestEncodeURIComponentStrict(t *testing.T) {
	tests := []struct{ in, want string }{
		{"localhost:8883/devices/dev1", "localhost%3A8883%2Fdevices%2Fdev1"},
		{"AZaz09-_.~", "AZaz09-_.~"},
		// The SDK escapes these with charCodeAt().toString(16): lower-case hex.
		{"!'()*", "%21%27%28%29%2a"},
		{"a b+c=d&e%f#g?h@i$j,k", "a%20b%2Bc%3Dd%26e%25f%23g%3Fh%40i%24j%2Ck"},
		{"é", "%C3%A9"},
	}
	for _, tt := range tests {
		if got := encodeURIComponentStrict(tt.in); got != tt.want {
			t.Errorf("encodeURIComponentStrict(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseSAS(f *testing.F) {
	f.Add("SharedAccessSignature sr=localhost%3A8443%2Fdevices%2Fdev1&sig=bTvrExuKiQckw4olkz55deDCNuFXrUKp6m7Hq0mUXos%3D&se=1893456000")
	f.Add("SharedAccessSignature se=1&skn=x&sig=a+b=&sr=h%2Fdevices%2Fd%2Fe")
	f.Add("SharedAccessSignature sr=%zz&sig=&se=-1&&=")
	f.Add("")
	const key = "xcZsAeMxKco0K53MG1YZnBLyUYqddElqPSw/PufMJjU="
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseSAS(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("ParseSAS(%q): error %v is not ErrMalformedToken", s, err)
			}
			return
		}
		if tok.Resource == "" || tok.Signature == "" || tok.Expiry.Unix() <= 0 {
			t.Fatalf("ParseSAS(%q) accepted an incomplete token: %+v", s, tok)
		}
		idx, err := tok.Verify("dev1", []string{key}, time.Unix(0, 0), []string{"localhost"})
		if err == nil && idx != 0 {
			t.Fatalf("Verify succeeded with key index %d", idx)
		}
		if err != nil && idx != -1 {
			t.Fatalf("Verify failed (%v) but returned key index %d", err, idx)
		}
	})
}
