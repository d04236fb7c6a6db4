package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// servePprof serves Go's runtime profiles (net/http/pprof: /debug/pprof/
// profile, heap, allocs, goroutine, …) on Config.PprofAddr, a loopback
// address, until the hub stops. Off unless --pprof-addr is given; bench/
// uses it to profile the hub under load.
func (a *App) servePprof(context.Context) error {
	if a.cfg.PprofAddr == "" {
		return nil
	}
	addr, log := a.cfg.PprofAddr, a.log
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("profiling endpoint: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// A CPU profile or trace runs for as long as asked (?seconds=N).
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("profiling endpoint stopped", "err", err)
		}
	}()
	log.Info("profiling endpoint is listening (net/http/pprof)", "addr", ln.Addr().String())
	a.onStop("profiling endpoint", quickStop, func(ctx context.Context) error {
		_ = srv.Shutdown(ctx)
		return srv.Close() // a profile still being taken
	})
	return nil
}
