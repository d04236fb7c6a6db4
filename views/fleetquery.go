package views

import (
	"net/url"
	"strconv"
)

// Orders of the fleet list, as the page's sort parameter names them
// (db.DeviceSort…).
const (
	SortID           = "id"
	SortName         = "name"
	SortStatus       = "status"
	SortLastActivity = "lastActivity"
)

// FleetPageSizes are the page sizes the fleet page offers; DefaultFleetPageSize
// is used when none is asked for.
var FleetPageSizes = []int{25, 50, 100, 200}

// DefaultFleetPageSize is the fleet page's size when the address names none.
const DefaultFleetPageSize = 50

// FleetQuery is what the fleet page's address carries: the filters, the
// order, the page size and the page. Its zero value is the first page of
// every device by id.
type FleetQuery struct {
	Query   string // the search, as typed
	Status  string // "", StatusOnline, StatusOffline or StatusDisabled
	Sort    string // "" (= SortID), SortName, SortStatus or SortLastActivity
	Desc    bool
	Size    int // 0 = DefaultFleetPageSize
	PageNum int // 1-based; 0 = 1
	// Advanced: Query is a device query (package query), asked for with
	// mode=query or typed starting with SELECT. Its results come in
	// device id order, a page at a time: After is the continuation token
	// of the page shown ("" for the first).
	Advanced bool
	After    string
}

func (q FleetQuery) size() int {
	if q.Size == 0 {
		return DefaultFleetPageSize
	}
	return q.Size
}

func (q FleetQuery) sort() string {
	if q.Sort == "" {
		return SortID
	}
	return q.Sort
}

// Filtered reports whether a search or status narrows the list.
func (q FleetQuery) Filtered() bool { return q.Query != "" || q.Status != "" }

// values are the parameters that differ from the defaults.
func (q FleetQuery) values(withPage bool) url.Values {
	v := url.Values{}
	if q.Query != "" {
		v.Set("q", q.Query)
	}
	if q.Advanced {
		v.Set("mode", "query")
	}
	if withPage && q.After != "" {
		v.Set("after", q.After)
	}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if q.sort() != SortID {
		v.Set("sort", q.Sort)
	}
	if q.Desc {
		v.Set("order", "desc")
	}
	if withPage && q.size() != DefaultFleetPageSize {
		v.Set("size", strconv.Itoa(q.Size))
	}
	if withPage && q.PageNum > 1 {
		v.Set("page", strconv.Itoa(q.PageNum))
	}
	return v
}

// URL is the fleet page's address for q.
func (q FleetQuery) URL() string {
	if v := q.values(true); len(v) > 0 {
		return FleetPath + "?" + v.Encode()
	}
	return FleetPath
}

// AtPage is q at page n.
func (q FleetQuery) AtPage(n int) FleetQuery {
	q.PageNum = n
	return q
}

// AfterToken is q's advanced query at the page that continuation token
// after names ("": the first).
func (q FleetQuery) AfterToken(after string) FleetQuery {
	q.After = after
	return q
}

// ExportURL downloads every device q selects, in q's order, as CSV.
func (q FleetQuery) ExportURL() string {
	v := q.values(false)
	v.Set("format", "csv")
	return "/api/v1/devices?" + v.Encode()
}

// ExportKeysURL is ExportURL with every device's credentials (admins): a
// backup that the import page restores.
func (q FleetQuery) ExportKeysURL() string { return q.ExportURL() + "&keys=true" }

// SortedBy is the first page of q ordered by column: ascending, or the
// other way round when q is already ordered by it. Last activity starts
// with the most recent.
func (q FleetQuery) SortedBy(column string) FleetQuery {
	if q.sort() == column {
		q.Desc = !q.Desc
	} else {
		q.Sort, q.Desc = column, column == SortLastActivity
	}
	if q.Sort == SortID {
		q.Sort = ""
	}
	q.PageNum = 1
	return q
}

// ariaSort is the aria-sort value of column's header: "ascending" or
// "descending" when the list is ordered by it, else "".
func (q FleetQuery) ariaSort(column string) string {
	switch {
	case q.sort() != column:
		return ""
	case q.Desc:
		return "descending"
	}
	return "ascending"
}

// sortHint tells screen reader users what following column's header link
// does (aria-sort already says how the list is ordered now).
func sortHint(q FleetQuery, column string) string {
	if q.SortedBy(column).Desc {
		return ", sort descending"
	}
	return ", sort ascending"
}
