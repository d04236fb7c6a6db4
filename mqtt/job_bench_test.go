package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/jobs"
	"fieldhub/registry"
)

// BenchmarkMethodJob1k is issue 13's jobs figure: a fleet method job on
// 1,000 devices connected over MQTT with TLS, each answering with a full
// client library, through the real broker, the real Invoker (audit
// included) and the jobs service on a durable SQLite file. One op is a
// whole job, from the request to the last outcome stored.
func BenchmarkMethodJob1k(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	store, err := db.Open(ctx, filepath.Join(e.dir, "fieldhub.db"), db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	var devs []db.Device
	for i := range benchDevices {
		dev, err := store.CreateDevice(ctx, db.NewDevice{DeviceID: fmt.Sprintf("dev%04d", i), Tags: map[string]string{"fleet": "bench"}})
		if err != nil {
			b.Fatal(err)
		}
		devs = append(devs, dev)
	}
	quiet := slog.New(slog.DiscardHandler)
	br, err := New(Config{
		Addr: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{e.cert}},
		Store: store, Devices: registry.New(registry.Config{Store: store, Audit: store}), Ingest: discardIngester{}, Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	host := "localhost:" + br.Addr()[strings.LastIndexByte(br.Addr(), ':')+1:]

	pem, err := os.ReadFile(e.caFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	clients := make([]paho.Client, len(devs))
	var wg sync.WaitGroup
	errs := make(chan error, len(devs))
	sem := make(chan struct{}, 50)
	for i, dev := range devs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := connectMethodTarget(br.Addr(), cfg, deviceLogin(b, host, dev))
			if err != nil {
				errs <- err
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	b.Cleanup(func() {
		for _, c := range clients {
			if c != nil {
				c.Disconnect(0)
			}
		}
	})
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	settle()

	invoker := commands.NewInvoker(commands.InvokerConfig{Store: store, Transport: br, Logger: quiet})
	svc := jobs.New(jobs.Config{Store: store, Methods: invoker, Twins: commands.NewTwins(commands.TwinsConfig{Store: store, Logger: quiet}),
		Cloud: commands.NewCloudQueue(commands.CloudQueueConfig{Store: store, Logger: quiet}), Logger: quiet})
	if err := svc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.Close)

	var last db.Job
	for b.Loop() {
		j, err := svc.Create(ctx, "bench", jobs.Spec{Type: db.JobMethod, Query: "tags.fleet = 'bench'",
			Method: &jobs.Method{Name: "ping", Payload: []byte(`{"n":1}`)}, MaxConcurrency: 100})
		if err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if last, err = store.Job(ctx, j.ID); err != nil {
				b.Fatal(err)
			}
			if last.Finished() {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("job not finished after 2 minutes: %+v", last)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if last.Succeeded != benchDevices {
			b.Fatalf("job %+v: want %d succeeded", last, benchDevices)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/job")
	b.ReportMetric(float64(benchDevices)/(b.Elapsed().Seconds()/float64(b.N)), "devices/s")
	b.ReportMetric(float64(last.FinishedAt.Sub(last.StartedAt).Milliseconds()), "last-job-ms")
}
