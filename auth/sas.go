package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors returned (wrapped with detail) by ParseSAS and SASToken.Verify.
// Callers tell them apart with errors.Is.
var (
	ErrMalformedToken = errors.New("malformed SAS token")
	ErrTokenExpired   = errors.New("SAS token expired")
	ErrBadSignature   = errors.New("SAS token signature does not match the keys")
	ErrWrongDevice    = errors.New("SAS token is not for this device")
	ErrWrongHost      = errors.New("SAS token is not for this hub's host name")
)

const sasPrefix = "SharedAccessSignature "

// SASToken is a parsed Azure IoT shared access signature.
type SASToken struct {
	// Resource is the sr field exactly as received, still URL-encoded: the
	// signature covers these bytes, so they must never be re-encoded.
	Resource string
	// Signature is the base64 HMAC-SHA256 (the sig field, URL-decoded).
	Signature string
	// Expiry is the se field (Unix seconds).
	Expiry time.Time
	// KeyName is the skn field, URL-decoded; empty for device-key tokens.
	KeyName string
}

// ParseSAS parses "SharedAccessSignature sr=…&sig=…&se=…[&skn=…]" with the
// fields in any order. It checks the shape only; Verify checks the signature.
func ParseSAS(s string) (SASToken, error) {
	var t SASToken
	rest, ok := strings.CutPrefix(s, sasPrefix)
	if !ok {
		return t, fmt.Errorf("%w: must start with %q", ErrMalformedToken, sasPrefix)
	}
	if rest == "" {
		return t, fmt.Errorf("%w: no fields after %q", ErrMalformedToken, sasPrefix)
	}
	var haveSR, haveSig, haveSE bool
	for field := range strings.SplitSeq(rest, "&") {
		name, value, ok := strings.Cut(field, "=")
		if !ok {
			return t, fmt.Errorf("%w: field %q has no '='", ErrMalformedToken, field)
		}
		var seen *bool
		switch name {
		case "sr":
			seen = &haveSR
			t.Resource = value
		case "sig":
			seen = &haveSig
			// PathUnescape, not QueryUnescape: an unencoded base64 '+' must stay '+'.
			sig, err := url.PathUnescape(value)
			if err != nil {
				return t, fmt.Errorf("%w: sig is not URL-encoded correctly: %v", ErrMalformedToken, err)
			}
			t.Signature = sig
		case "se":
			seen = &haveSE
			secs, err := strconv.ParseInt(value, 10, 64)
			// Canonical digits only: Verify signs the formatted value, which
			// must equal what the client signed.
			if err != nil || secs <= 0 || strconv.FormatInt(secs, 10) != value {
				return t, fmt.Errorf("%w: se %q is not a positive whole number of Unix seconds", ErrMalformedToken, value)
			}
			t.Expiry = time.Unix(secs, 0)
		case "skn":
			name, err := url.PathUnescape(value)
			if err != nil {
				return t, fmt.Errorf("%w: skn is not URL-encoded correctly: %v", ErrMalformedToken, err)
			}
			t.KeyName = name
			continue
		default:
			// Azure ignores unknown fields too; they are not signed.
			continue
		}
		if *seen {
			return t, fmt.Errorf("%w: field %q appears twice", ErrMalformedToken, name)
		}
		*seen = true
	}
	switch {
	case !haveSR || t.Resource == "":
		return t, fmt.Errorf("%w: missing sr (resource)", ErrMalformedToken)
	case !haveSig || t.Signature == "":
		return t, fmt.Errorf("%w: missing sig (signature)", ErrMalformedToken)
	case !haveSE:
		return t, fmt.Errorf("%w: missing se (expiry)", ErrMalformedToken)
	}
	return t, nil
}

// SignSAS builds a device token exactly as the Azure IoT device SDKs do.
// resource is unencoded, like "localhost:8443/devices/dev1".
func SignSAS(resource, base64Key string, expiry time.Time) (string, error) {
	key, err := base64.StdEncoding.DecodeString(base64Key)
	if err != nil {
		return "", fmt.Errorf("sign sas token: key is not base64: %w", err)
	}
	sr := encodeURIComponentStrict(resource)
	se := strconv.FormatInt(expiry.Unix(), 10)
	sig := encodeURIComponentStrict(sign(key, sr, se))
	return sasPrefix + "sr=" + sr + "&sig=" + sig + "&se=" + se, nil
}

// Verify checks the token for deviceID against the device's keys (base64;
// primary first, then secondary; empty entries are skipped) and returns the
// index of the key that signed it (-1 with an error). hostnames, when not empty, lists the host
// names the hub answers to; an entry without a port accepts any port.
func (t SASToken) Verify(deviceID string, keys []string, now time.Time, hostnames []string) (keyIndex int, err error) {
	host, err := t.checkResource(deviceID)
	if err != nil {
		return -1, err
	}
	if len(hostnames) > 0 && !hostAllowed(host, hostnames) {
		return -1, fmt.Errorf("%w: token host %q, hub answers to %s", ErrWrongHost, host, strings.Join(hostnames, ", "))
	}
	return t.verifyKeys(keys, now, fmt.Sprintf("device %q", deviceID))
}

// VerifyService checks a service token (one signed with a shared access
// policy's key, skn=<policy>) against the policy's keys for a request to
// path (like "/devices/dev1"). Its sr names the hub's host, in any letter
// case; an sr with a path too (as IoT Hub accepts) grants only the
// requests below that path, on whole segments. hostnames and the result
// are as for Verify.
func (t SASToken) VerifyService(keys []string, now time.Time, hostnames []string, path string) (keyIndex int, err error) {
	decoded, err := url.PathUnescape(t.Resource)
	if err != nil {
		return -1, fmt.Errorf("%w: sr is not URL-encoded correctly: %v", ErrMalformedToken, err)
	}
	host, scope, _ := strings.Cut(decoded, "/")
	if host == "" {
		return -1, fmt.Errorf("%w: sr %q does not start with the hub's host name", ErrMalformedToken, decoded)
	}
	if len(hostnames) > 0 && !hostAllowed(host, hostnames) {
		return -1, fmt.Errorf("%w: token host %q, hub answers to %s", ErrWrongHost, host, strings.Join(hostnames, ", "))
	}
	scope = strings.Trim(scope, "/")
	p := strings.Trim(path, "/")
	if scope != "" && !strings.EqualFold(p, scope) && !(len(p) > len(scope) && strings.EqualFold(p[:len(scope)], scope) && p[len(scope)] == '/') {
		return -1, fmt.Errorf("%w: sr %q does not cover %q", ErrWrongDevice, decoded, "/"+p)
	}
	return t.verifyKeys(keys, now, fmt.Sprintf("policy %q", t.KeyName))
}

// verifyKeys checks the signature against keys (base64; empty entries are
// skipped), then the expiry; who names the key holder in the error.
func (t SASToken) verifyKeys(keys []string, now time.Time, who string) (keyIndex int, err error) {
	got, err := base64.StdEncoding.DecodeString(t.Signature)
	if err != nil {
		return -1, fmt.Errorf("%w: sig is not base64", ErrBadSignature)
	}
	se := strconv.FormatInt(t.Expiry.Unix(), 10)
	keyIndex = -1
	for i, k := range keys {
		if k == "" {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			return -1, fmt.Errorf("verify sas token: key %d of %s is not base64: %w", i, who, err)
		}
		if hmac.Equal(got, hmacSHA256(key, t.Resource+"\n"+se)) && keyIndex < 0 {
			keyIndex = i
		}
	}
	if keyIndex < 0 {
		return -1, fmt.Errorf("%w (%s)", ErrBadSignature, who)
	}
	// Checked after the signature so that only the key holder learns a token expired.
	if !now.Before(t.Expiry) {
		return -1, fmt.Errorf("%w at %s (now %s)", ErrTokenExpired, t.Expiry.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return keyIndex, nil
}

// SignServiceSAS builds a service token exactly as the Azure IoT service
// SDKs do: resource is the hub's host name (unencoded), keyName the
// policy's name, base64Key one of its keys.
func SignServiceSAS(resource, keyName, base64Key string, expiry time.Time) (string, error) {
	tok, err := SignSAS(resource, base64Key, expiry)
	if err != nil {
		return "", err
	}
	return tok + "&skn=" + encodeURIComponentStrict(keyName), nil
}

// checkResource decodes sr and checks that it names deviceID; it returns the
// host part (with any port).
func (t SASToken) checkResource(deviceID string) (string, error) {
	decoded, err := url.PathUnescape(t.Resource)
	if err != nil {
		return "", fmt.Errorf("%w: sr is not URL-encoded correctly: %v", ErrMalformedToken, err)
	}
	host, path, ok := strings.Cut(decoded, "/")
	if !ok || host == "" {
		return "", fmt.Errorf("%w: sr %q is not <host>/devices/<id>", ErrMalformedToken, decoded)
	}
	// A token for a path prefix grants everything below it, but only on whole
	// segments: "devices/dev1" covers "devices/dev1/…", never "devices/dev10".
	want := "devices/" + deviceID
	if path != want && !strings.HasPrefix(path, want+"/") {
		return "", fmt.Errorf("%w: sr %q does not name device %q", ErrWrongDevice, decoded, deviceID)
	}
	return host, nil
}

// hostAllowed reports whether the token host matches one of the hub's names.
// Host names compare case-insensitively; a configured name without a port
// matches the host with any port, since the SDK puts HostName's port into sr.
func hostAllowed(host string, hostnames []string) bool {
	bare := stripPort(host)
	for _, h := range hostnames {
		if strings.EqualFold(h, host) || (stripPort(h) == h && strings.EqualFold(h, bare)) {
			return true
		}
	}
	return false
}

// stripPort removes a trailing ":port" (also from "[::1]:8883").
func stripPort(host string) string {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.Contains(host[i:], "]") {
		return host
	}
	if strings.HasPrefix(host, "[") {
		return strings.Trim(host[:i], "[]")
	}
	if strings.Count(host, ":") > 1 {
		return host // a bare IPv6 address, no port
	}
	return host[:i]
}

func sign(key []byte, sr, se string) string {
	return base64.StdEncoding.EncodeToString(hmacSHA256(key, sr+"\n"+se))
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// encodeURIComponentStrict matches azure-iot-common's encodeUriComponentStrict:
// JavaScript's encodeURIComponent (upper-case hex) followed by escaping
// ! ' ( ) * with lower-case hex via charCodeAt(0).toString(16) — so '*'
// becomes "%2a", not "%2A". Tokens must be byte-identical to the SDK's.
func encodeURIComponentStrict(s string) string {
	const upperHex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) * 3 / 2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		case c == '!', c == '\'', c == '(', c == ')', c == '*':
			b.WriteByte('%')
			b.WriteString(strconv.FormatInt(int64(c), 16))
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
	}
	return b.String()
}
