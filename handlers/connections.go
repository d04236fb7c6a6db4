package handlers

// DeviceConnections closes live device connections (MQTT) that a change to
// the device no longer admits; *mqtt.Broker implements it.
type DeviceConnections interface {
	// CheckDevice re-checks the device's connection against the registry
	// and closes it if the device was disabled or deleted or the key it
	// signed with was rotated.
	CheckDevice(deviceID string)
	// CheckAllDevices re-checks every connection, e.g. after a CA
	// certificate was removed.
	CheckAllDevices()
}

// checkConnection ends a connection the change just made no longer admits,
// at once rather than at the broker's next periodic check.
func (s *Server) checkConnection(deviceID string) {
	s.devices.forget(deviceID) // SAS checks re-read the device (device_auth.go)
	if s.connections != nil {
		s.connections.CheckDevice(deviceID)
	}
}
