package mqtt

import (
	"fmt"
	"os"
	"testing"
)

// TestMain lets the test binary double as the benchmarks' load generator:
// started again with loadgenEnv set, it plays the devices (see
// runLoadgen) and exits instead of running tests, so the generator's
// goroutines, GC and memory stay out of the broker's figures.
func TestMain(m *testing.M) {
	if spec := os.Getenv(loadgenEnv); spec != "" {
		if err := runLoadgen(spec, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
