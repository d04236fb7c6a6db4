package storage

// The kinds of record whose disk use the dashboard shows (DiskUsage.Kinds),
// the ones that grow with time, each with its own retention.
const (
	KindMessages = "message log"
	KindRaw      = "raw readings"
	KindRollups  = "rollups"
	KindAudit    = "audit log"
	KindAlerts   = "alerts"
)

// DiskUsage is the disk space a store takes, by kind of record, as far as
// the store can tell without reading every row: figures an administrator
// plans disk and retention by, not an audit.
type DiskUsage struct {
	// Total is the space the database takes as a whole; Free, the part
	// of it that holds nothing now and is reused before the file grows
	// (0 where the store cannot tell).
	Total, Free int64
	// Kinds are the records that grow with time, in the order of the Kind
	// constants.
	Kinds []KindUsage
}

// KindUsage is the disk use of one kind of record, its indexes included.
type KindUsage struct {
	Kind  string
	Rows  int64
	Bytes int64
	// Estimated is set when the figures come from a sample (the newest
	// rows' sizes times the row count) rather than from the store's own
	// accounting.
	Estimated bool
}
