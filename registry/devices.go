package registry

import (
	"context"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/live"
)

// Audit actions of device and CA changes.
const (
	ActionCreate               = "device.create"
	ActionUpdate               = "device.update"
	ActionEnable               = "device.enable"
	ActionDisable              = "device.disable"
	ActionSetAuthentication    = "device.set-authentication"
	ActionRotateKey            = "device.rotate-key"
	ActionDelete               = "device.delete"
	ActionShowConnectionString = "device.show-connection-string"
	ActionAddCA                = "ca.add"
	ActionRemoveCA             = "ca.remove"
)

// Create registers a device on behalf of actor (user:x, token:x, cli, …).
func (r *Registry) Create(ctx context.Context, actor string, nd db.NewDevice) (db.Device, error) {
	d, err := r.cfg.Store.CreateDevice(ctx, nd)
	if err != nil {
		return db.Device{}, err
	}
	r.audit(ctx, actor, ActionCreate, d.DeviceID, DescribeAuthentication(d.Auth))
	r.watch(ctx, d, "")
	return d, nil
}

// Update applies u (nil fields stay as they are). The audit log names the
// change the same way whichever door it came through: enabling or
// disabling alone is device.enable or device.disable, changing only the
// authentication device.set-authentication, anything else device.update.
// A change of the enabled flag is announced live; any change closes the
// device's connection if it no longer admits it.
func (r *Registry) Update(ctx context.Context, actor, deviceID string, u db.DeviceUpdate) (db.Device, error) {
	d, err := r.cfg.Store.UpdateDevice(ctx, deviceID, u)
	if err != nil {
		return db.Device{}, err
	}
	action, detail := ActionUpdate, ""
	onlyAuth := u.Auth != nil && u.Name == nil && u.Tags == nil && u.Enabled == nil
	onlyEnabled := u.Enabled != nil && u.Name == nil && u.Tags == nil && u.Auth == nil
	switch {
	case onlyAuth:
		action = ActionSetAuthentication
	case onlyEnabled && *u.Enabled:
		action = ActionEnable
	case onlyEnabled:
		action = ActionDisable
	}
	if u.Auth != nil {
		detail = DescribeAuthentication(d.Auth)
	}
	r.audit(ctx, actor, action, d.DeviceID, detail)
	r.recheck(d.DeviceID)
	if u.Tags != nil {
		r.watch(ctx, d, "")
	}
	if u.Enabled != nil {
		r.announce(d.DeviceID, d.Status(r.cfg.Now()))
	}
	return d, nil
}

// SetEnabled enables or disables a device: a disabled device is refused
// until it is enabled again.
func (r *Registry) SetEnabled(ctx context.Context, actor, deviceID string, enabled bool) (db.Device, error) {
	return r.Update(ctx, actor, deviceID, db.DeviceUpdate{Enabled: &enabled})
}

// SetAuthentication changes how a device authenticates; connections opened
// with the old credentials are closed at once.
func (r *Registry) SetAuthentication(ctx context.Context, actor, deviceID string, a db.Authentication) (db.Device, error) {
	return r.Update(ctx, actor, deviceID, db.DeviceUpdate{Auth: &a})
}

// RotateKey replaces a SAS device's primary or secondary key (db.PrimaryKey,
// db.SecondaryKey); a connection signed with the old key is closed.
func (r *Registry) RotateKey(ctx context.Context, actor, deviceID, which string) (db.Device, error) {
	d, err := r.cfg.Store.RotateDeviceKey(ctx, deviceID, which)
	if err != nil {
		return db.Device{}, err
	}
	r.audit(ctx, actor, ActionRotateKey, d.DeviceID, which)
	r.recheck(d.DeviceID)
	return d, nil
}

// Delete removes a device and everything stored for it, announces it gone
// and closes its connection.
func (r *Registry) Delete(ctx context.Context, actor, deviceID string) error {
	if err := r.cfg.Store.DeleteDevice(ctx, deviceID); err != nil {
		return err
	}
	r.audit(ctx, actor, ActionDelete, deviceID, "")
	r.recheck(deviceID)
	r.announce(deviceID, live.StatusDeleted)
	r.watch(ctx, db.Device{}, deviceID)
	return nil
}

// RevealConnectionString returns a device's connection string for host
// (ConnectionString) and records in the audit log that actor saw it: it
// holds the device's key.
func (r *Registry) RevealConnectionString(ctx context.Context, actor, deviceID, host string) (string, db.Device, error) {
	d, err := r.cfg.Store.Device(ctx, deviceID)
	if err != nil {
		return "", db.Device{}, err
	}
	r.audit(ctx, actor, ActionShowConnectionString, d.DeviceID, "")
	return ConnectionString(host, d), d, nil
}

// RevealConnections returns how device deviceID connects to the hub at ep
// with its key and a SAS token filled in (Connections), and records in the
// audit log that actor saw them.
func (r *Registry) RevealConnections(ctx context.Context, actor, deviceID string, ep Endpoints, now time.Time) ([]Connection, db.Device, error) {
	d, err := r.cfg.Store.Device(ctx, deviceID)
	if err != nil {
		return nil, db.Device{}, err
	}
	conns, err := Connections(ep, d, ConnectOptions{Secrets: true, Now: now})
	if err != nil {
		return nil, db.Device{}, err
	}
	r.audit(ctx, actor, ActionShowConnectionString, d.DeviceID, "")
	return conns, d, nil
}

// DescribeAuthentication says in the audit log how a device authenticates.
func DescribeAuthentication(a db.Authentication) string {
	if a.Type != auth.AuthSelfSigned {
		return "authentication: " + a.Type
	}
	d := "authentication: selfSigned, primary thumbprint " + a.PrimaryThumbprint
	if a.SecondaryThumbprint != "" {
		d += ", secondary thumbprint " + a.SecondaryThumbprint
	}
	return d
}

// AddCA trusts a CA certificate (PEM) for certificateAuthority devices.
func (r *Registry) AddCA(ctx context.Context, actor, name string, pemBytes []byte) (db.CertificateAuthority, error) {
	ca, err := r.cfg.Store.AddCertificateAuthority(ctx, name, pemBytes)
	if err != nil {
		return db.CertificateAuthority{}, err
	}
	r.audit(ctx, actor, ActionAddCA, ca.Name, ca.Subject+", thumbprint "+ca.Thumbprint)
	return ca, nil
}

// RemoveCA stops trusting a CA certificate and closes the connections it
// admitted.
func (r *Registry) RemoveCA(ctx context.Context, actor, name string) error {
	if err := r.cfg.Store.DeleteCertificateAuthority(ctx, name); err != nil {
		return err
	}
	r.audit(ctx, actor, ActionRemoveCA, name, "")
	r.mu.RLock()
	s := r.sessions
	r.mu.RUnlock()
	if s != nil {
		s.CheckAllDevices()
	}
	return nil
}
