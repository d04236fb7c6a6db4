// Package policy owns shared access policies, as on Azure IoT Hub: named
// pairs of keys with rights (registryRead, registryWrite, serviceConnect,
// deviceConnect) that back-end apps sign service SAS tokens with. It adds,
// lists, removes and rotates them with their audit entries, builds their
// connection strings, and authenticates service tokens (Authenticate) and
// device tokens signed with a policy key (AuthenticateDevice) through the
// one SAS verification of package auth.
package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/storage"
)

// Store keeps the policies (*db.DB, *postgres.Store; db/storetest.RunPolicies).
type Store interface {
	CreatePolicy(ctx context.Context, p db.Policy) (db.Policy, error)
	Policy(ctx context.Context, name string) (db.Policy, error)
	Policies(ctx context.Context) ([]db.Policy, error)
	RotatePolicyKey(ctx context.Context, name, which string) (db.Policy, error)
	DeletePolicy(ctx context.Context, name string) error
	RecordAudit(ctx context.Context, e db.AuditEntry) error
}

// Audit actions of policies.
const (
	ActionCreate = "policy.create"
	ActionDelete = "policy.delete"
	ActionRotate = "policy.rotate-key"
	ActionReveal = "policy.reveal"
)

// Bounds of what a token may carry, checked before anything is parsed or
// looked up.
const (
	// MaxToken bounds the whole Authorization header: a token of the
	// longest host name, policy name and signature is well below it.
	MaxToken = 2048
	// MaxResource bounds sr.
	MaxResource = 1024
)

// ErrUnknownPolicy is a token naming no policy of this hub. Callers answer
// it as they answer a bad signature: 401, telling nothing more.
var ErrUnknownPolicy = errors.New("no shared access policy of that name")

// ErrNoRight is a valid token whose policy lacks the right a request needs.
var ErrNoRight = errors.New("the policy does not grant this right")

// Config is what a Service needs; Store is required.
type Config struct {
	Store Store
	// Hostnames, when not empty, are the only hosts a token's sr may name
	// (as registry.Config.Hostnames).
	Hostnames []string
	Logger    *slog.Logger
	Now       func() time.Time
}

// Service manages policies and checks the tokens signed with them.
type Service struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	verified map[string]time.Time // tokens that verified, to their expiry
}

// maxVerified bounds the tokens remembered; past it the memory starts over.
const maxVerified = 10_000

// New builds a Service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, log: cfg.Logger, verified: map[string]time.Time{}}
}

// Actor is how the audit log names what a policy's token did.
func Actor(name string) string { return "policy:" + name }

// Create adds a policy with fresh keys on behalf of actor.
func (s *Service) Create(ctx context.Context, actor, name string, rights db.Rights) (db.Policy, error) {
	p, err := db.NewPolicy(name, rights, s.cfg.Now())
	if err != nil {
		return db.Policy{}, err
	}
	if p, err = s.cfg.Store.CreatePolicy(ctx, p); err != nil {
		return db.Policy{}, err
	}
	s.audit(ctx, db.AuditEntry{Actor: actor, Action: ActionCreate, Target: Actor(p.Name), Detail: "rights " + p.Rights.String()})
	return p, nil
}

// List returns every policy, keys included: callers show keys to admins only.
func (s *Service) List(ctx context.Context) ([]db.Policy, error) { return s.cfg.Store.Policies(ctx) }

// Policy reads one policy.
func (s *Service) Policy(ctx context.Context, name string) (db.Policy, error) {
	return s.cfg.Store.Policy(ctx, name)
}

// Reveal reads a policy to show its keys and records who saw them.
func (s *Service) Reveal(ctx context.Context, actor, name string) (db.Policy, error) {
	p, err := s.cfg.Store.Policy(ctx, name)
	if err != nil {
		return db.Policy{}, err
	}
	s.audit(ctx, db.AuditEntry{Actor: actor, Action: ActionReveal, Target: Actor(p.Name), Detail: "keys shown"})
	return p, nil
}

// Remove deletes a policy: tokens signed with its keys stop working at once.
func (s *Service) Remove(ctx context.Context, actor, name string) error {
	if err := s.cfg.Store.DeletePolicy(ctx, name); err != nil {
		return err
	}
	s.audit(ctx, db.AuditEntry{Actor: actor, Action: ActionDelete, Target: Actor(name)})
	return nil
}

// RotateKey replaces the primary or secondary key (db.PrimaryKey,
// db.SecondaryKey): tokens signed with the old key stop working.
func (s *Service) RotateKey(ctx context.Context, actor, name, which string) (db.Policy, error) {
	p, err := s.cfg.Store.RotatePolicyKey(ctx, name, which)
	if err != nil {
		return db.Policy{}, err
	}
	s.audit(ctx, db.AuditEntry{Actor: actor, Action: ActionRotate, Target: Actor(name), Detail: which + " key"})
	return p, nil
}

func (s *Service) audit(ctx context.Context, e db.AuditEntry) {
	if err := s.cfg.Store.RecordAudit(ctx, e); err != nil {
		s.log.Error("record audit", "action", e.Action, "target", e.Target, "err", err)
	}
}

// ConnectionString is a policy's service connection string, as IoT Hub
// shows it: host is the device listener's host (with its port unless 443),
// which is where the service API is served.
func ConnectionString(host string, p db.Policy) string {
	return "HostName=" + host + ";SharedAccessKeyName=" + p.Name + ";SharedAccessKey=" + p.PrimaryKey
}

// IsServiceToken tells a token signed with a policy key (it names one with
// skn) from a device token, without parsing the rest.
func IsServiceToken(header string) bool {
	return strings.Contains(header, "skn=")
}

// Authenticate checks the Authorization header of a service API request
// to path at now: a SAS token whose skn names a policy, signed with one of
// its keys, for this hub's host (and, with a path in sr, for path), not
// expired. It returns the policy; the errors wrap auth's SAS errors or
// ErrUnknownPolicy, whose messages describe the token only.
func (s *Service) Authenticate(ctx context.Context, header, path string, now time.Time) (db.Policy, error) {
	tok, p, err := s.parse(ctx, header)
	if err != nil {
		return db.Policy{}, err
	}
	if _, err := tok.VerifyService(p.Keys(), now, s.cfg.Hostnames, path); err != nil {
		return db.Policy{}, err
	}
	s.remember(header, tok.Expiry)
	return p, nil
}

// Verified reports whether header is a token that verified before and has
// not expired: apps send the same token for as long as it lasts, so the
// throttle of failed attempts (handlers) need not hold their requests.
// Every request is still authenticated in full.
func (s *Service) Verified(header string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.verified[header]
	return ok && now.Before(exp)
}

func (s *Service) remember(header string, expiry time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.verified) >= maxVerified {
		clear(s.verified)
	}
	s.verified[header] = expiry
}

// AuthenticateDevice checks a device-endpoint token signed with a policy
// key: sr names the device (<host>/devices/<id>), as on IoT Hub, and the
// policy must grant deviceConnect (ErrNoRight otherwise, told only to a
// holder of a valid token). It returns the policy and the token's expiry.
func (s *Service) AuthenticateDevice(ctx context.Context, header, deviceID string, now time.Time) (db.Policy, time.Time, error) {
	tok, p, err := s.parse(ctx, header)
	if err != nil {
		return db.Policy{}, time.Time{}, err
	}
	if _, err := tok.Verify(deviceID, p.Keys(), now, s.cfg.Hostnames); err != nil {
		return db.Policy{}, time.Time{}, err
	}
	if !p.Rights.Has(db.RightDeviceConnect) {
		return db.Policy{}, time.Time{}, fmt.Errorf("%w: policy %q lacks deviceConnect", ErrNoRight, p.Name)
	}
	return p, tok.Expiry, nil
}

// parse bounds and parses a token and reads the policy it names.
func (s *Service) parse(ctx context.Context, header string) (auth.SASToken, db.Policy, error) {
	if len(header) > MaxToken {
		return auth.SASToken{}, db.Policy{}, fmt.Errorf("%w: %d bytes, at most %d are allowed", auth.ErrMalformedToken, len(header), MaxToken)
	}
	tok, err := auth.ParseSAS(header)
	if err != nil {
		return auth.SASToken{}, db.Policy{}, err
	}
	if len(tok.Resource) > MaxResource {
		return auth.SASToken{}, db.Policy{}, fmt.Errorf("%w: sr is %d bytes, at most %d are allowed", auth.ErrMalformedToken, len(tok.Resource), MaxResource)
	}
	if tok.KeyName == "" {
		return auth.SASToken{}, db.Policy{}, fmt.Errorf("%w: missing skn (the shared access policy's name)", auth.ErrMalformedToken)
	}
	if db.ValidatePolicyName(tok.KeyName) != nil {
		return auth.SASToken{}, db.Policy{}, ErrUnknownPolicy
	}
	p, err := s.cfg.Store.Policy(ctx, tok.KeyName)
	if errors.Is(err, storage.ErrNotFound) {
		return auth.SASToken{}, db.Policy{}, ErrUnknownPolicy
	}
	if err != nil {
		return auth.SASToken{}, db.Policy{}, err
	}
	return tok, p, nil
}

// ServiceHost is the HostName of service connection strings: the service
// API is served on the HTTPS device listener, so its host, with its port
// unless 443 (the port the service SDKs dial).
func ServiceHost(host string, httpsPort int) string {
	if httpsPort == 0 || httpsPort == 443 {
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(httpsPort))
}
