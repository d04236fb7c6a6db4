// Package auth holds Fieldhub's credentials logic: operator passwords, session and
// API token secrets, login throttling, and device SAS tokens.
package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// MinPasswordLength keeps trivially guessable passwords out.
const MinPasswordLength = 8

// ErrBadPassword is returned when a password does not match.
var ErrBadPassword = errors.New("wrong username or password")

// HashPassword hashes a password with bcrypt.
func HashPassword(password string) (string, error) {
	if len(password) < MinPasswordLength {
		return "", fmt.Errorf("password must be at least %d characters", MinPasswordLength)
	}
	if len(password) > 72 {
		return "", fmt.Errorf("password must be at most 72 bytes (a bcrypt limit)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword compares a password with its hash in constant time.
func CheckPassword(hash, password string) error {
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		return ErrBadPassword
	}
	return nil
}

// dummyHash lets a login for an unknown user cost as much as one for a known
// user, so response times do not tell which usernames exist.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("fieldhub-dummy-password"), bcrypt.DefaultCost)
	return h
})

// BurnPasswordCheck spends the time of one password check.
func BurnPasswordCheck(password string) {
	_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
}

// RandomToken returns n random bytes, URL-safe base64 without padding.
func RandomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewAPIToken returns a fresh operator API token; the prefix makes leaked tokens
// easy to recognise in logs and secret scanners.
func NewAPIToken() string { return "fh_" + RandomToken(32) }

// NewPassword returns a random password for the first admin.
func NewPassword() string { return RandomToken(12) }
