package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
)

// The device transports of the Azure IoT device SDKs the hub serves, by the
// names the CLI takes (device show --transport).
const (
	TransportMQTT   = "mqtt"
	TransportMQTTWS = "mqtt-ws"
	TransportHTTPS  = "https"
)

// Transports lists them in the order the page and the CLI show them.
var Transports = []string{TransportMQTT, TransportMQTTWS, TransportHTTPS}

// The ports the SDKs dial: MQTT the port in HostName or 8883; HTTPS and
// MQTT over WebSocket always 443, whatever HostName says.
const (
	MQTTDefaultPort = 8883
	HTTPSPort       = 443
)

// CAFileName is what the snippets call the CA certificate devices trust
// (the dashboard's download is saved under this name).
const CAFileName = "fieldhub-ca.pem"

// Endpoints is where the hub serves devices, as serve bound them: recorded
// at start (db.SettingDeviceEndpoints) so that the CLI shows what the
// dashboard shows.
type Endpoints struct {
	// Host is the name devices dial (--hostname, default localhost).
	Host string `json:"host"`
	// MQTTPort is the MQTT-over-TLS port; 0 when MQTT is off.
	MQTTPort int `json:"mqttPort"`
	// HTTPSPort is the HTTPS device endpoint's port, which also serves MQTT
	// over WebSocket when WebSocket is set.
	HTTPSPort int  `json:"httpsPort"`
	WebSocket bool `json:"webSocket"`
	// CAFile is the PEM file devices trust: the generated CA or the chain
	// given with --tls-cert.
	CAFile string `json:"caFile,omitempty"`
}

// DefaultEndpoints are serve's defaults, for a data folder no hub has run
// on yet.
func DefaultEndpoints() Endpoints {
	return Endpoints{Host: "localhost", MQTTPort: MQTTDefaultPort, HTTPSPort: 8443, WebSocket: true}
}

// ParseEndpoints reads the recorded endpoints.
func ParseEndpoints(s string) (Endpoints, error) {
	var ep Endpoints
	if err := json.Unmarshal([]byte(s), &ep); err != nil {
		return Endpoints{}, fmt.Errorf("recorded device endpoints: %w", err)
	}
	if ep.Host == "" || ep.HTTPSPort <= 0 {
		return Endpoints{}, fmt.Errorf("recorded device endpoints %q: host and HTTPS port are required", s)
	}
	return ep, nil
}

// String is the recorded form of the endpoints.
func (ep Endpoints) String() string {
	b, _ := json.Marshal(ep)
	return string(b)
}

// Connection is how a device connects over one transport: the connection
// string that works with it, the port the SDK dials, whether that works as
// the hub is configured, and code to copy.
type Connection struct {
	Transport string // TransportMQTT, …
	Name      string // for people: "MQTT over TLS"
	// Served is false when the hub does not serve the transport at all;
	// Fix then says how to turn it on, and the rest is empty.
	Served bool
	// ConnectionString is the string as the SDKs take it; without secrets,
	// the key is a placeholder.
	ConnectionString string
	// Port is the port the SDKs dial; HubPort where the hub listens.
	Port, HubPort int
	// Works says whether the SDKs reach the hub with ConnectionString as
	// configured; Problem says why not, Fix what to change.
	Works        bool
	Problem, Fix string
	// Note is what to know beyond that (e.g. SDKs that ignore the port).
	Note     string
	Snippets []Snippet
}

// Snippet is code to copy for one SDK or tool.
type Snippet struct {
	ID       string // node, python, csharp, curl, mosquitto
	Title    string
	Language string // for people and syntax: javascript, python, csharp, shell
	Code     string
	// Works is false for a tool that cannot reach the hub as configured
	// (Note says why).
	Works bool
	Note  string
}

// Placeholders stand for the secrets a viewer without the admin role does
// not see.
const (
	KeyPlaceholder   = "<device-key>"
	TokenPlaceholder = "<sas-token>"
)

// ConnectOptions say what goes into the connections.
type ConnectOptions struct {
	// Secrets fills in the device's primary key and a SAS token signed with
	// it; without, they are placeholders.
	Secrets bool
	// Now is when the snippets' SAS tokens start their hour.
	Now time.Time
}

// TokenLifetime is how long the SAS tokens in the snippets are valid.
const TokenLifetime = time.Hour

// Connections is the one account of how device d connects to the hub at
// ep, per transport (in Transports order); the device page and `fieldhub
// device show` both print it.
func Connections(ep Endpoints, d db.Device, opt ConnectOptions) ([]Connection, error) {
	cred, err := newCredentials(ep, d, opt)
	if err != nil {
		return nil, err
	}
	return []Connection{mqttConnection(ep, cred), webSocketConnection(ep, cred), httpsConnection(ep, cred)}, nil
}

// ConnectionFor is the connection of one transport.
func ConnectionFor(ep Endpoints, d db.Device, opt ConnectOptions, transport string) (Connection, error) {
	all, err := Connections(ep, d, opt)
	if err != nil {
		return Connection{}, err
	}
	for _, c := range all {
		if c.Transport == transport {
			return c, nil
		}
	}
	return Connection{}, fmt.Errorf("transport %q: use %s", transport, strings.Join(Transports, ", "))
}

// credentials are what the snippets fill in for the device.
type credentials struct {
	deviceID string
	x509     bool
	key      string // primary key or KeyPlaceholder; "" for X.509
	token    string // SAS token or TokenPlaceholder; "" for X.509
	expiry   time.Time
	secrets  bool
}

func newCredentials(ep Endpoints, d db.Device, opt ConnectOptions) (credentials, error) {
	c := credentials{deviceID: d.DeviceID, x509: d.Auth.X509(), secrets: opt.Secrets}
	if c.x509 {
		return c, nil
	}
	c.key, c.token = KeyPlaceholder, TokenPlaceholder
	if !opt.Secrets {
		return c, nil
	}
	c.key = d.PrimaryKey
	c.expiry = opt.Now.Add(TokenLifetime)
	// The hub accepts tokens for its host with any port (auth.SASToken.Verify).
	tok, err := auth.SignSAS(ep.Host+"/devices/"+d.DeviceID, d.PrimaryKey, c.expiry)
	if err != nil {
		return credentials{}, fmt.Errorf("connection of %s: %w", d.DeviceID, err)
	}
	c.token = tok
	return c, nil
}

// connectionString for HostName host (host[:port]).
func (c credentials) connectionString(host string) string {
	if c.x509 {
		return "HostName=" + host + ";DeviceId=" + c.deviceID + ";x509=true"
	}
	return KeyConnectionString(host, c.deviceID, c.key)
}

// portFix is what to change so that an SDK dialling 443 reaches a hub
// endpoint on another port.
func portFix(ep Endpoints) string {
	return fmt.Sprintf("Serve the HTTPS device endpoint on port 443 (serve --device-addr :443, or FIELDHUB_DEVICE_ADDR=:443; "+
		"binding 443 needs root or CAP_NET_BIND_SERVICE, which deploy/fieldhub.service grants), "+
		"or put a TCP (TLS passthrough) proxy on %s:443 that forwards to port %d.", ep.Host, ep.HTTPSPort)
}

func mqttConnection(ep Endpoints, cred credentials) Connection {
	c := Connection{Transport: TransportMQTT, Name: "MQTT over TLS", Port: ep.MQTTPort, HubPort: ep.MQTTPort}
	if ep.MQTTPort == 0 {
		c.Fix = "MQTT is off on this hub. Start serve with --mqtt-addr :8883 (FIELDHUB_MQTT_ADDR) to serve it."
		return c
	}
	c.Served, c.Works = true, true
	host := ep.Host
	otherPort := ep.MQTTPort != MQTTDefaultPort
	if otherPort {
		// The Node SDK's MQTT transport dials the port in HostName.
		host = net.JoinHostPort(ep.Host, strconv.Itoa(ep.MQTTPort))
		c.Note = fmt.Sprintf("HostName carries port %d, which the Node SDK and mosquitto_pub dial; the Python and C# SDKs always dial 8883 "+
			"and need the hub's MQTT endpoint on :8883 (serve --mqtt-addr :8883).", ep.MQTTPort)
	}
	c.ConnectionString = cred.connectionString(host)
	c.Snippets = []Snippet{
		nodeSnippet(c.ConnectionString, "Mqtt", "azure-iot-device-mqtt", cred),
		pythonSnippet(c.ConnectionString, false, cred, !otherPort),
		csharpSnippet(c.ConnectionString, "Mqtt_Tcp_Only", cred, !otherPort),
		mosquittoSnippet(ep, cred),
	}
	return c
}

func webSocketConnection(ep Endpoints, cred credentials) Connection {
	c := Connection{Transport: TransportMQTTWS, Name: "MQTT over WebSocket", Port: HTTPSPort, HubPort: ep.HTTPSPort}
	if !ep.WebSocket {
		c.Fix = "MQTT over WebSocket is served with MQTT, which is off on this hub. Start serve with --mqtt-addr :8883 (FIELDHUB_MQTT_ADDR)."
		return c
	}
	c.Served = true
	// The SDKs build wss://<HostName>:443/$iothub/websocket: a port in
	// HostName would break the URL.
	c.ConnectionString = cred.connectionString(ep.Host)
	c.Works = ep.HTTPSPort == HTTPSPort
	if !c.Works {
		c.Problem = fmt.Sprintf("The SDKs dial wss://%s:443/$iothub/websocket, but the hub serves WebSockets on the HTTPS device endpoint, port %d.",
			ep.Host, ep.HTTPSPort)
		c.Fix = portFix(ep)
	}
	c.Snippets = []Snippet{
		nodeSnippet(c.ConnectionString, "MqttWs", "azure-iot-device-mqtt", cred),
		pythonSnippet(c.ConnectionString, true, cred, true),
		csharpSnippet(c.ConnectionString, "Mqtt_WebSocket_Only", cred, true),
	}
	for i := range c.Snippets {
		c.Snippets[i].Works = c.Snippets[i].Works && c.Works
	}
	return c
}

func httpsConnection(ep Endpoints, cred credentials) Connection {
	c := Connection{Transport: TransportHTTPS, Name: "HTTPS", Served: true, Port: HTTPSPort, HubPort: ep.HTTPSPort}
	c.ConnectionString = cred.connectionString(ep.Host)
	c.Works = ep.HTTPSPort == HTTPSPort
	if !c.Works {
		c.Problem = fmt.Sprintf("The SDKs' HTTP transport dials https://%s:443, but the hub's HTTPS device endpoint is on port %d.", ep.Host, ep.HTTPSPort)
		c.Fix = portFix(ep)
	}
	c.Note = "The Python SDK has no HTTP transport; use MQTT or MQTT over WebSocket from Python."
	c.Snippets = []Snippet{
		nodeSnippet(c.ConnectionString, "Http", "azure-iot-device-http", cred),
		csharpSnippet(c.ConnectionString, "Http1", cred, true),
		curlSnippet(ep, cred),
	}
	for i := range c.Snippets[:2] {
		c.Snippets[i].Works = c.Works
	}
	return c
}

// jsString is s as a string literal of JavaScript, Python and C# alike.
func jsString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// shellQuote is s as one POSIX shell word, quoted when it needs to be.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/=+@%,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func nodeSnippet(cs, transport, pkg string, cred credentials) Snippet {
	var b strings.Builder
	fmt.Fprintf(&b, "// npm install azure-iot-device %s\n", pkg)
	fmt.Fprintf(&b, "// Run with the hub's CA trusted: NODE_EXTRA_CA_CERTS=%s node send.cjs\n", CAFileName)
	b.WriteString("const { Client, Message } = require('azure-iot-device');\n")
	fmt.Fprintf(&b, "const { %s } = require('%s');\n", transport, pkg)
	if cred.x509 {
		b.WriteString("const { readFileSync } = require('node:fs');\n")
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "const client = Client.fromConnectionString(%s, %s);\n", jsString(cs), transport)
	if cred.x509 {
		b.WriteString("client.setOptions({ cert: readFileSync('device.pem', 'utf8'), key: readFileSync('device-key.pem', 'utf8') });\n")
	}
	b.WriteString("const message = new Message(JSON.stringify({ temperature: 21.5 }));\n")
	b.WriteString("message.contentType = 'application/json';\nmessage.contentEncoding = 'utf-8';\n")
	b.WriteString("client.sendEvent(message)\n")
	b.WriteString("  .then(() => { console.log('message sent'); return client.close(); })\n")
	b.WriteString("  .catch((err) => { console.error(err.message); process.exit(1); });\n")
	return Snippet{ID: "node", Title: "Node.js (azure-iot-device)", Language: "javascript", Code: b.String(), Works: true}
}

func pythonSnippet(cs string, websockets bool, cred credentials, works bool) Snippet {
	var b strings.Builder
	b.WriteString("# pip install azure-iot-device\n")
	if cred.x509 {
		b.WriteString("from azure.iot.device import IoTHubDeviceClient, Message, X509\n\n")
	} else {
		b.WriteString("from azure.iot.device import IoTHubDeviceClient, Message\n\n")
	}
	fmt.Fprintf(&b, "with open(%s) as f:\n    ca = f.read()\n", jsString(CAFileName))
	ws := ""
	if websockets {
		ws = ", websockets=True"
	}
	if cred.x509 {
		host, _, _ := strings.Cut(strings.TrimPrefix(cs, "HostName="), ";")
		b.WriteString("x509 = X509(cert_file=\"device.pem\", key_file=\"device-key.pem\")\n")
		fmt.Fprintf(&b, "client = IoTHubDeviceClient.create_from_x509_certificate(\n    x509=x509, hostname=%s, device_id=%s,\n    server_verification_cert=ca%s)\n",
			jsString(host), jsString(cred.deviceID), ws)
	} else {
		fmt.Fprintf(&b, "client = IoTHubDeviceClient.create_from_connection_string(\n    %s,\n    server_verification_cert=ca%s)\n", jsString(cs), ws)
	}
	b.WriteString("client.send_message(Message('{\"temperature\": 21.5}', content_encoding=\"utf-8\", content_type=\"application/json\"))\n")
	b.WriteString("print(\"message sent\")\nclient.shutdown()\n")
	s := Snippet{ID: "python", Title: "Python (azure-iot-device)", Language: "python", Code: b.String(), Works: works}
	if !works {
		s.Note = "The Python SDK dials port 8883 whatever HostName says: it reaches this hub once MQTT is served on :8883."
	}
	return s
}

func csharpSnippet(cs, transport string, cred credentials, works bool) Snippet {
	var b strings.Builder
	b.WriteString("// dotnet add package Microsoft.Azure.Devices.Client\n")
	fmt.Fprintf(&b, "// Trust the hub's CA first, e.g. on Linux: sudo cp %s /usr/local/share/ca-certificates/fieldhub.crt && sudo update-ca-certificates\n", CAFileName)
	b.WriteString("using System.Text;\nusing Microsoft.Azure.Devices.Client;\n")
	if cred.x509 {
		b.WriteString("using System.Security.Cryptography.X509Certificates;\n\n")
		b.WriteString("var cert = X509Certificate2.CreateFromPemFile(\"device.pem\", \"device-key.pem\");\n")
		host, _, _ := strings.Cut(strings.TrimPrefix(cs, "HostName="), ";")
		fmt.Fprintf(&b, "using var client = DeviceClient.Create(%s,\n    new DeviceAuthenticationWithX509Certificate(%s, cert), TransportType.%s);\n",
			jsString(host), jsString(cred.deviceID), transport)
	} else {
		b.WriteString("\n")
		fmt.Fprintf(&b, "using var client = DeviceClient.CreateFromConnectionString(\n    %s,\n    TransportType.%s);\n", jsString(cs), transport)
	}
	b.WriteString("using var message = new Message(Encoding.UTF8.GetBytes(\"{\\\"temperature\\\": 21.5}\"))\n")
	b.WriteString("{\n    ContentType = \"application/json\",\n    ContentEncoding = \"utf-8\",\n};\n")
	b.WriteString("await client.SendEventAsync(message);\nConsole.WriteLine(\"message sent\");\n")
	s := Snippet{ID: "csharp", Title: "C# (Microsoft.Azure.Devices.Client)", Language: "csharp", Code: b.String(), Works: works}
	if !works {
		s.Note = "The C# SDK dials port 8883 for MQTT whatever HostName says: it reaches this hub once MQTT is served on :8883."
	}
	return s
}

// tokenNote says where a SAS token comes from, for the shell snippets.
func (c credentials) tokenNote() string {
	if c.secrets {
		return fmt.Sprintf("# The SAS token is valid for one hour, until %s; a new one: fieldhub device token %s\n",
			c.expiry.UTC().Format(time.RFC3339), shellQuote(c.deviceID))
	}
	return fmt.Sprintf("# Replace %s with a token: fieldhub device token %s (an admin can run it)\n", TokenPlaceholder, shellQuote(c.deviceID))
}

func curlSnippet(ep Endpoints, cred credentials) Snippet {
	var b strings.Builder
	u := "https://" + net.JoinHostPort(ep.Host, strconv.Itoa(ep.HTTPSPort)) + "/devices/" + url.PathEscape(cred.deviceID) + "/messages/events?api-version=2020-09-30"
	if !cred.x509 {
		b.WriteString(cred.tokenNote())
	}
	fmt.Fprintf(&b, "curl --fail-with-body --cacert %s \\\n", CAFileName)
	if cred.x509 {
		b.WriteString("  --cert device.pem --key device-key.pem \\\n")
	} else {
		fmt.Fprintf(&b, "  -H %s \\\n", shellQuote("Authorization: "+cred.token))
	}
	b.WriteString("  -H 'Content-Type: application/json' \\\n")
	b.WriteString("  -d '{\"temperature\": 21.5}' \\\n")
	fmt.Fprintf(&b, "  %s\n", shellQuote(u))
	return Snippet{ID: "curl", Title: "curl", Language: "shell", Code: b.String(), Works: true,
		Note: fmt.Sprintf("curl takes the port from the URL, so it reaches the hub on port %d as configured.", ep.HTTPSPort)}
}

func mosquittoSnippet(ep Endpoints, cred credentials) Snippet {
	var b strings.Builder
	if !cred.x509 {
		b.WriteString(cred.tokenNote())
	}
	fmt.Fprintf(&b, "mosquitto_pub -V mqttv311 -q 1 --cafile %s \\\n", CAFileName)
	fmt.Fprintf(&b, "  -h %s -p %d -i %s \\\n", shellQuote(ep.Host), ep.MQTTPort, shellQuote(cred.deviceID))
	fmt.Fprintf(&b, "  -u %s \\\n", shellQuote(ep.Host+"/"+cred.deviceID+"/?api-version=2021-04-12"))
	if cred.x509 {
		b.WriteString("  --cert device.pem --key device-key.pem \\\n")
	} else {
		fmt.Fprintf(&b, "  -P %s \\\n", shellQuote(cred.token))
	}
	fmt.Fprintf(&b, "  -t %s \\\n", shellQuote("devices/"+cred.deviceID+"/messages/events/"))
	b.WriteString("  -m '{\"temperature\": 21.5}'\n")
	return Snippet{ID: "mosquitto", Title: "mosquitto_pub", Language: "shell", Code: b.String(), Works: true}
}
