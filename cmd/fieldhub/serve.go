package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/static"
)

// serveConfig is every setting of `fieldhub serve`, parsed once and passed down.
type serveConfig struct {
	Addr     string
	DataDir  string
	Demo     bool
	Hostname string
	LogLevel string
}

func parseServe(e env, args []string) (serveConfig, error) {
	var cfg serveConfig
	fs := newFlagSet(e, "serve", "serve [flags]")
	fs.StringVar(&cfg.Addr, "addr", envOr(e, "FIELDHUB_ADDR", "127.0.0.1:8080"), "dashboard and API listen address (env FIELDHUB_ADDR)")
	fs.StringVar(&cfg.DataDir, "data", envOr(e, "FIELDHUB_DATA", "./data"), "data folder (env FIELDHUB_DATA)")
	fs.BoolVar(&cfg.Demo, "demo", envOr(e, "FIELDHUB_DEMO", "") == "1" || envOr(e, "FIELDHUB_DEMO", "") == "true", "create demo devices on first start and run them (env FIELDHUB_DEMO=1)")
	fs.StringVar(&cfg.Hostname, "hostname", envOr(e, "FIELDHUB_HOSTNAME", ""), "host name devices dial; goes into connection strings and the TLS certificate (env FIELDHUB_HOSTNAME)")
	fs.StringVar(&cfg.LogLevel, "log-level", envOr(e, "FIELDHUB_LOG_LEVEL", "info"), "debug, info, warn or error (env FIELDHUB_LOG_LEVEL)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return cfg, err
	}
	if len(pos) != 0 {
		return cfg, usagef("serve takes no arguments, got %q", pos)
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return cfg, usagef("serve: --addr %q is not host:port: %v", cfg.Addr, err)
	}
	return cfg, nil
}

func newLogger(e env, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: l})), nil
}

func runServe(ctx context.Context, e env, args []string) error {
	cfg, err := parseServe(e, args)
	if err != nil {
		return err
	}
	log, err := newLogger(e, cfg.LogLevel)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, e, log)
}

// serve runs the hub until ctx is cancelled, then shuts down in reverse order of start.
func serve(ctx context.Context, cfg serveConfig, e env, log *slog.Logger) error {
	store, err := openDB(ctx, cfg.DataDir)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close database", "err", err)
		}
	}()
	if err := store.ResetConnections(ctx); err != nil {
		return err
	}
	if err := ensureAdmin(ctx, store, log); err != nil {
		return err
	}
	host := cfg.Hostname
	if host == "" {
		host = "localhost"
	}
	deviceHost := host + ":8443"
	if err := store.SetSetting(ctx, db.SettingDeviceHost, deviceHost); err != nil {
		return err
	}

	assets, err := static.New()
	if err != nil {
		return fmt.Errorf("load front-end assets: %w", err)
	}
	router, _ := handlers.New(handlers.Config{DB: store, Assets: assets, Logger: log, DeviceHost: deviceHost})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	url := "http://" + displayAddr(ln.Addr().String())
	log.Info("fieldhub is running", "url", url, "data", cfg.DataDir, "version", version)
	fmt.Fprintf(e.stderr, "\n  Fieldhub dashboard: %s\n\n", url)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("dashboard server: %w", err)
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Error("stop dashboard server", "err", err)
	}
	return nil
}

// displayAddr turns a listen address into one a browser can open.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

// ensureAdmin creates user admin with a random password when there are no users,
// and logs the password once: it is stored only as a hash.
func ensureAdmin(ctx context.Context, store *db.DB, log *slog.Logger) error {
	n, err := store.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		log.Info("log in with an existing user; to reset the admin password run: fieldhub user passwd --data <data> admin")
		return nil
	}
	pw := auth.NewPassword()
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return err
	}
	if _, err := store.CreateUser(ctx, "admin", hash, db.RoleAdmin); err != nil {
		return fmt.Errorf("create first admin: %w", err)
	}
	log.Info("created the first user; username: admin, admin password: " + pw)
	return nil
}
