package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestServeRefusesDataFolderInUse starts a second serve on the folder of a
// running one: it must exit at once naming the process that holds the
// folder, while the CLI commands go on working beside the running hub.
func TestServeRefusesDataFolderInUse(t *testing.T) {
	data := t.TempDir()
	hub := serveInProcess(t, data)

	// Without the lock the second serve would run; the timeout ends it so
	// that the test fails instead of hanging.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stderr syncBuffer
	err := run(ctx, []string{"serve", "--data", data, "--addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"},
		func(string) string { return "" }, strings.NewReader(""), &bytes.Buffer{}, &stderr)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("second serve on a folder in use: %v (stderr %q); want it to refuse at once", err, stderr.String())
	}
	for _, want := range []string{"in use", fmt.Sprintf("pid %d", os.Getpid()), "started "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(stderr.String(), "Fieldhub dashboard") {
		t.Errorf("the second serve started:\n%s", stderr.String())
	}

	// The CLI works beside the running hub.
	if _, _, err := cli(t, "", "device", "add", "--data", data, "beside-1"); err != nil {
		t.Errorf("device add beside a running hub: %v", err)
	}
	if out, _, err := cli(t, "", "device", "list", "--data", data); err != nil || !strings.Contains(out, "beside-1") {
		t.Errorf("device list beside a running hub = %q, %v", out, err)
	}

	// Once the first hub stopped, the folder is free again.
	hub.stop(t)
	serveInProcess(t, data).stop(t)
}
