package app

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"fieldhub/certs"
	"fieldhub/datadir"
	"fieldhub/registry"
)

// serverCertificate is the TLS certificate of the device listeners: the one
// given with --tls-cert/--tls-key, or one issued by a CA generated once into
// <data>/tls (devices trust its ca.pem).
func serverCertificate(cfg Config, log *slog.Logger) (tls.Certificate, error) {
	if cfg.TLSCert != "" {
		cert, err := certs.Load(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("device TLS: %w", err)
		}
		return cert, nil
	}
	dir := datadir.TLS(cfg.DataDir)
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

// IsLoopback reports whether a listen address is reachable only from this
// machine; "" and unspecified hosts (":8080", "0.0.0.0") are not.
func IsLoopback(addr string) bool {
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

// connectionHost is the HostName of the connection strings Fieldhub hands out.
// The SDKs' MQTT transport dials the port in HostName (default 8883), while
// their HTTPS and MQTT-over-WebSocket transports always dial 443. So HostName
// carries the MQTT port when MQTT is on and not on 8883; without MQTT it carries
// the HTTPS device port unless that is 443.
func connectionHost(host, httpsAddr, mqttAddr string) string {
	addr, defaultPort := httpsAddr, "443"
	if mqttAddr != "" {
		addr, defaultPort = mqttAddr, "8883"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == defaultPort {
		return host
	}
	return net.JoinHostPort(host, port)
}

// deviceEndpoints is where the hub serves devices, for the connection help
// of the device page and the CLI (registry.Connections): host devices dial,
// the bound MQTT and HTTPS ports, and the file devices trust.
func deviceEndpoints(cfg Config, host, httpsAddr, mqttAddr string, webSocket bool) (registry.Endpoints, error) {
	ep := registry.Endpoints{Host: host, WebSocket: webSocket}
	var err error
	if ep.HTTPSPort, err = addrPort(httpsAddr); err != nil {
		return ep, fmt.Errorf("device endpoint address: %w", err)
	}
	if mqttAddr != "" {
		if ep.MQTTPort, err = addrPort(mqttAddr); err != nil {
			return ep, fmt.Errorf("MQTT endpoint address: %w", err)
		}
	}
	ca := cfg.TLSCert
	if ca == "" {
		ca = filepath.Join(datadir.TLS(cfg.DataDir), certs.CAFile)
	}
	if abs, err := filepath.Abs(ca); err == nil {
		ca = abs
	}
	ep.CAFile = ca
	return ep, nil
}

func addrPort(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(port)
}

// trustAnchorPEM is the certificate devices trust to reach the device
// endpoints: the root at the top of the chain they present (the generated
// CA, or the root a --tls-cert chain ends in). A chain that ends below its
// root (a public CA's, say) offers none: devices trust that root already.
func trustAnchorPEM(cert tls.Certificate) []byte {
	if len(cert.Certificate) == 0 {
		return nil
	}
	top, err := x509.ParseCertificate(cert.Certificate[len(cert.Certificate)-1])
	if err != nil || top.CheckSignatureFrom(top) != nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: top.Raw})
}
