package metrics

import (
	"os"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDashboardNamesExist holds deploy/grafana-fieldhub.json to the
// metrics the hub exposes: a renamed metric must not leave a panel empty.
func TestDashboardNamesExist(t *testing.T) {
	ch := make(chan *prometheus.Desc, 64)
	(&collector{}).Describe(ch)
	close(ch)
	described := map[string]bool{}
	name := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		m := name.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		described[m[1]] = true
	}
	b, err := os.ReadFile("../deploy/grafana-fieldhub.json")
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`fieldhub_[a-z_]+`).FindAllString(string(b), -1)
	if len(used) == 0 {
		t.Fatal("the dashboard uses no fieldhub_ metric")
	}
	for _, n := range used {
		if !described[n] {
			t.Errorf("the dashboard uses %s, which the hub does not expose", n)
		}
	}
}
