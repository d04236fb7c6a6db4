package bus

import "encoding/base64"

// The subjects of the bus. Live events go to every instance; the rest to
// the one instance a device is connected to.
const (
	subjectLive = "fieldhub.live"
	// subjectRules: an alert rule was created, changed or deleted; the
	// message is the rule's id, and every instance reloads that rule.
	subjectRules = "fieldhub.rules"
	// devicePrefix + deviceToken(id): the message events of one device,
	// for the instances whose browsers follow it.
	devicePrefix = "fieldhub.live.device."
	// nodePrefix + node + "." + one of the kinds below.
	nodePrefix   = "fieldhub.node."
	kindMethod   = "method"
	kindC2D      = "c2d"
	kindDesired  = "desired"
	kindTakeover = "takeover"
)

// headerNode names the instance a message comes from.
const headerNode = "Fieldhub-Node"

// deviceSubject is the subject of a device's message events. Device ids
// may hold '.', '*' and '>', which subjects give a meaning: the id is
// base64url-encoded into one token.
func deviceSubject(deviceID string) string {
	return devicePrefix + base64.RawURLEncoding.EncodeToString([]byte(deviceID))
}

func nodeSubject(node, kind string) string { return nodePrefix + node + "." + kind }
