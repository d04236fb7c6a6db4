package bus

// The subjects of the bus. Live events go to every instance; the rest to
// the one instance a device is connected to.
const (
	subjectLive = "fieldhub.live"
	// nodePrefix + node + "." + one of the kinds below.
	nodePrefix   = "fieldhub.node."
	kindMethod   = "method"
	kindC2D      = "c2d"
	kindDesired  = "desired"
	kindTakeover = "takeover"
)

// headerNode names the instance a message comes from.
const headerNode = "Fieldhub-Node"

func nodeSubject(node, kind string) string { return nodePrefix + node + "." + kind }
