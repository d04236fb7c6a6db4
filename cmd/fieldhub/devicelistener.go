package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"fieldhub/certs"
)

// serverCertificate is the TLS certificate of the device listeners: the one
// given with --tls-cert/--tls-key, or one issued by a CA generated once into
// <data>/tls (devices trust its ca.pem).
func serverCertificate(cfg serveConfig, log *slog.Logger) (tls.Certificate, error) {
	if cfg.TLSCert != "" {
		cert, err := certs.Load(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("device TLS: %w", err)
		}
		return cert, nil
	}
	dir := filepath.Join(cfg.DataDir, "tls")
	var hosts []string
	if cfg.Hostname != "" {
		hosts = append(hosts, cfg.Hostname)
	}
	cert, err := certs.Ensure(dir, hosts, time.Now())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("device TLS: %w", err)
	}
	ca, _ := filepath.Abs(filepath.Join(dir, certs.CAFile))
	log.Info("devices must trust the hub's CA certificate; e.g. NODE_EXTRA_CA_CERTS="+ca+", or add it to the OS trust store",
		"ca", ca)
	return cert, nil
}

// isLoopback reports whether a listen address is reachable only from this
// machine; "" and unspecified hosts (":8080", "0.0.0.0") are not.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// deviceHostName is the HostName devices put in their connection strings:
// the hub's host name and the device listener's real port (443 is implied,
// and the SDKs' HTTPS transport cannot take another port from HostName).
func deviceHostName(host string, ln net.Listener) string {
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil || port == "443" {
		return host
	}
	return net.JoinHostPort(host, port)
}
