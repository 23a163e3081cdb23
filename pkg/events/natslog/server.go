package natslog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startEmbedded runs a NATS server inside this process: JetStream with a
// file store under the data directory, no client port (the broadcaster
// connects in-process), no signal handlers of its own, logging through slog.
// With a cluster name it also listens for routes and joins its peers.
//
// The data directory is locked first (lockDataDir) and stays locked until
// the caller releases the returned lock, after the server has shut down.
func startEmbedded(cfg *Config) (*server.Server, string, *dirLock, error) {
	if cfg.DataDir == "" {
		return nil, "", nil, errors.New("embedded NATS needs a data directory")
	}
	storeDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, "", nil, err
	}
	if err := os.MkdirAll(storeDir, 0o750); err != nil {
		return nil, "", nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := lockDataDir(storeDir, cfg.DataDir)
	if err != nil {
		return nil, "", nil, err
	}
	ns, token, err := runEmbedded(cfg, storeDir)
	if err != nil {
		lock.release()
		return nil, "", nil, err
	}
	return ns, token, lock, nil
}

func runEmbedded(cfg *Config, storeDir string) (*server.Server, string, error) {
	opts := &server.Options{
		ServerName: cfg.ServerName,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true,
		DontListen: true,
	}
	if cfg.ClusterName != "" {
		// nats-server starts routing only once its client listener is up, so
		// a clustered server gets one, on a random loopback port, with a
		// random token so that no other local process can publish
		// revocations behind the API's back.
		opts.DontListen = false
		opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
		opts.Authorization = NewIdempotencyKey()
		host, port, err := splitHostPort(cfg.ClusterAddr)
		if err != nil {
			return nil, "", fmt.Errorf("cluster address %q: %w", cfg.ClusterAddr, err)
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: host, Port: port}
		if cfg.ClusterSecret != "" {
			opts.Cluster.Username, opts.Cluster.Password = routeUser, cfg.ClusterSecret
		}
		if cfg.ClusterTLSCertFile != "" || cfg.ClusterTLSKeyFile != "" || cfg.ClusterTLSCAFile != "" {
			tc, err := routeTLSConfig(cfg)
			if err != nil {
				return nil, "", err
			}
			opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = tc, routeTLSTimeout.Seconds()
		}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return nil, "", fmt.Errorf("route %q: want nats://host:port", r)
			}
			if cfg.ClusterSecret != "" {
				u.User = url.UserPassword(routeUser, cfg.ClusterSecret)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, "", fmt.Errorf("embedded NATS server: %w", err)
	}
	ns.SetLoggerV2(&slogAdapter{l: cfg.Logger.With("component", "nats")}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, "", errors.New("embedded NATS server did not become ready in 30s")
	}
	return ns, opts.Authorization, nil
}

// routeTLSTimeout bounds a route's TLS handshake.
const routeTLSTimeout = 5 * time.Second

// routeTLSConfig is mutual TLS for the routes, as nats-server configures a
// cluster's "tls" block: each side is a server to the routes it accepts and
// a client of those it solicits, so the CA verifies both, and a peer
// without a certificate of that CA is refused.
func routeTLSConfig(cfg *Config) (*tls.Config, error) {
	if cfg.ClusterTLSCertFile == "" || cfg.ClusterTLSKeyFile == "" || cfg.ClusterTLSCAFile == "" {
		return nil, errors.New("cluster TLS needs a certificate, its key and the CA that signs every route's certificate")
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: cfg.ClusterTLSCertFile,
		KeyFile:  cfg.ClusterTLSKeyFile,
		CaFile:   cfg.ClusterTLSCAFile,
		Verify:   true,
		Timeout:  routeTLSTimeout.Seconds(),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster TLS: %w", err)
	}
	if tc == nil || tc.ClientCAs == nil {
		return nil, fmt.Errorf("cluster TLS: CA file %s holds no certificate", cfg.ClusterTLSCAFile)
	}
	tc.ClientAuth = tls.RequireAndVerifyClientCert
	tc.RootCAs = tc.ClientCAs
	tc.MinVersion = max(tc.MinVersion, tls.VersionTLS12)
	return tc, nil
}

// routeUser is the user name routes authenticate with; the secret is the
// password.
const routeUser = "revocast"

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

func connectExternal(cfg *Config) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("revocast-broadcaster"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		// a deployment that is down at start-up is retried like one that
		// goes down later; EnsureStream waits for it
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			cfg.Logger.Warn("disconnected from NATS", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			cfg.Logger.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file: %w", err)
		}
		opts = append(opts, opt)
	}
	if cfg.TLSCAFile != "" || cfg.TLSCertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TLSCAFile != "" {
			pem, err := os.ReadFile(cfg.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("NATS CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("NATS CA file %s holds no PEM certificate", cfg.TLSCAFile)
			}
			tc.RootCAs = pool
		}
		if cfg.TLSCertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("NATS client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, nats.Secure(tc))
	}
	var servers string
	for i, u := range cfg.URLs {
		if i > 0 {
			servers += ","
		}
		servers += u
	}
	return nats.Connect(servers, opts...)
}

// slogAdapter lets the NATS server log through the broadcaster's logger.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) logf(level slog.Level, format string, v ...any) {
	if a.l.Enabled(context.Background(), level) {
		a.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

// Noticef keeps the server's start-up banner (ASCII art, indented settings)
// at debug level; its other notices (routes, leaders) stay at info.
func (a *slogAdapter) Noticef(format string, v ...any) {
	level := slog.LevelInfo
	if format == "" || strings.HasPrefix(format, " ") || strings.Contains(format, "___") || strings.HasPrefix(format, "---") ||
		strings.HasPrefix(format, "  ") || strings.Contains(format, "https://docs.nats.io") {
		level = slog.LevelDebug
	}
	a.logf(level, format, v...)
}
func (a *slogAdapter) Warnf(format string, v ...any)  { a.logf(slog.LevelWarn, format, v...) }
func (a *slogAdapter) Fatalf(format string, v ...any) { a.logf(slog.LevelError+4, format, v...) }
func (a *slogAdapter) Errorf(format string, v ...any) { a.logf(slog.LevelError, format, v...) }
func (a *slogAdapter) Debugf(format string, v ...any) { a.logf(slog.LevelDebug, format, v...) }
func (a *slogAdapter) Tracef(format string, v ...any) { a.logf(slog.LevelDebug-4, format, v...) }
