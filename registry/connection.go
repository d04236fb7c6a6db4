package registry

import "fieldhub/db"

// ConnectionString is what a device SDK is configured with to reach the hub
// at host (host[:port]): the device's primary key, or for an X.509 device
// the SDKs' x509=true form — the certificate and key are given to the SDK
// separately.
func ConnectionString(host string, d db.Device) string {
	if d.Auth.X509() {
		return "HostName=" + host + ";DeviceId=" + d.DeviceID + ";x509=true"
	}
	return KeyConnectionString(host, d.DeviceID, d.PrimaryKey)
}

// KeyConnectionString is the connection string of a SAS device with key.
func KeyConnectionString(host, deviceID, key string) string {
	return "HostName=" + host + ";DeviceId=" + deviceID + ";SharedAccessKey=" + key
}
