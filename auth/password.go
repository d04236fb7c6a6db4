// Package auth holds Fieldhub's credentials logic: operator passwords, session and
// API token secrets, login throttling, and device SAS tokens.
package auth

import (
	"context"
	"crypto/rand"
	_ "embed" // the common password list
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// MinPasswordLength keeps trivially guessable passwords out.
const MinPasswordLength = 10

// commonPasswordList is the 10,000 most common passwords, most common first,
// lower case; commonpasswords/README.md names its source and licence.
//
//go:embed commonpasswords/top10000.txt
var commonPasswordList string

// commonPasswords is commonPasswordList as a set, built on first use.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 10_000)
	for _, p := range strings.Split(strings.TrimSpace(commonPasswordList), "\n") {
		set[p] = struct{}{}
	}
	return set
})

// CheckPasswordRules says why a new password is refused: shorter than 10
// characters, longer than bcrypt's 72 bytes, or, in any letter case, one of
// the 10,000 most common passwords. Every place a password is set applies it
// (HashPassword).
func CheckPasswordRules(password string) error {
	switch {
	case utf8.RuneCountInString(password) < MinPasswordLength:
		return fmt.Errorf("password must be at least %d characters", MinPasswordLength)
	case len(password) > maxPasswordBytes:
		return fmt.Errorf("password must be at most %d bytes (a bcrypt limit)", maxPasswordBytes)
	}
	if _, common := commonPasswords()[strings.ToLower(password)]; common {
		return errors.New("password is one of the 10,000 most common passwords; choose another")
	}
	return nil
}

// maxPasswordBytes is bcrypt's limit: it reads no further.
const maxPasswordBytes = 72

// ErrBadPassword is returned when a password does not match.
var ErrBadPassword = errors.New("wrong username or password")

// HashPassword hashes a new password with bcrypt after checking it
// against CheckPasswordRules.
func HashPassword(password string) (string, error) {
	if err := CheckPasswordRules(password); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword compares a password with its hash in constant time.
func CheckPassword(hash, password string) error {
	err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
	// bcrypt reads 72 bytes: a longer password would match a stored one
	// that is its beginning. No stored password is longer (HashPassword).
	if err != nil || len(password) > maxPasswordBytes {
		return ErrBadPassword
	}
	return nil
}

// ErrBusy is returned when no password check could start in time.
var ErrBusy = errors.New("too many password checks at once; try again in a moment")

// PasswordChecker bounds the CPU spent on password checks: bcrypt costs
// tens of milliseconds, so a flood of logins from many addresses, each
// within its throttle budget, could otherwise occupy every core.
type PasswordChecker struct {
	slots  chan struct{}
	wait   time.Duration
	checks atomic.Int64
}

// NewPasswordChecker allows concurrent checks at once; a check waits at
// most wait for a slot.
func NewPasswordChecker(concurrent int, wait time.Duration) *PasswordChecker {
	return &PasswordChecker{slots: make(chan struct{}, max(concurrent, 1)), wait: wait}
}

// Check compares password with hash, or, when hash is "", spends the time
// of a check (an unknown username costs what a known one does, so timing
// does not tell which exist). It returns ErrBadPassword on a mismatch,
// ErrBusy when no slot came free within the wait, or ctx's error.
func (p *PasswordChecker) Check(ctx context.Context, hash, password string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	timer := time.NewTimer(p.wait)
	defer timer.Stop()
	select {
	case p.slots <- struct{}{}:
	case <-timer.C:
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.slots }()
	p.checks.Add(1)
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return ErrBadPassword
	}
	return CheckPassword(hash, password)
}

// Checks is how many passwords were checked against bcrypt.
func (p *PasswordChecker) Checks() int64 { return p.checks.Load() }

// dummyHash lets a login for an unknown user cost as much as one for a known
// user, so response times do not tell which usernames exist.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("fieldhub-dummy-password"), bcrypt.DefaultCost)
	return h
})

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
