package main

import (
	"strings"
	"testing"
)

// TestStoreFlagErrors: a --store that is not a PostgreSQL URL, and backup
// or restore of a PostgreSQL store, fail at once with what to do instead,
// never showing the password.
func TestStoreFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"device", "list", "--store", "mysql://u:hunter22@h/db"}, []string{"not a PostgreSQL URL", "postgres://USER:PASSWORD@HOST"}},
		{[]string{"backup", "--store", "postgres://u:hunter22@h/db", "out.backup"}, []string{"pg_dump", "tls/", "postgres://u:xxxxx@h/db"}},
		{[]string{"restore", "--store", "postgres://u:hunter22@h/db", "in.backup"}, []string{"pg_restore"}},
	} {
		t.Run(strings.Join(tt.args[:2], " "), func(t *testing.T) {
			_, _, err := cli(t, "", append(tt.args, "--data", t.TempDir())...)
			if err == nil {
				t.Fatal("succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter22") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}
