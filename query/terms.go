package query

// MaxTerms is what a store asks of a condition at most: the comparisons,
// function calls, IN lists and Boolean fields it evaluates for every
// device it scans. The parser does not enforce it; callers that run
// conditions do (fleet queries, jobs).
const MaxTerms = 100

// Terms counts the comparisons, function calls, IN lists and Boolean
// fields of a condition: the work it does for each device.
func Terms(c Cond) int {
	switch c := c.(type) {
	case *And:
		n := 0
		for _, t := range c.Terms {
			n += Terms(t)
		}
		return n
	case *Or:
		n := 0
		for _, t := range c.Terms {
			n += Terms(t)
		}
		return n
	case *Not:
		return Terms(c.Cond)
	case nil:
		return 0
	}
	return 1
}
