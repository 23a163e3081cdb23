package cmdutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/revocast/revocast/pkg/sse"
)

// ErrNoCertificate is returned by CAPool for a file without a PEM
// certificate.
var ErrNoCertificate = errors.New("no PEM certificate in it")

// NewLogger returns the logger of a binary's --log-level (debug, info,
// warn or error) and --log-format (text or json) flags, writing to w. Its
// errors name the flag at fault.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log-format %q: want text or json", format)
}

// CAPool reads the PEM certificates of a --ca-file. They are the only
// roots trusted: a --ca-file replaces the system's roots rather than adds
// to them, so that a deployment with its own CA is not also trusting every
// public one for its broadcaster and key set.
func CAPool(file string) (*x509.CertPool, error) {
	pemData, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("ca-file %s: %w", file, ErrNoCertificate)
	}
	return pool, nil
}

// HTTPClient returns an HTTP client that trusts the certificates of caFile
// only (see CAPool), or the system's roots when caFile is "". It honours
// the proxy environment variables, speaks HTTP/2 and TLS 1.2 or later, and
// has pkg/sse's connect and response-header timeouts but no overall one:
// an event stream stays open, callers bound requests with their context.
func HTTPClient(caFile string) (*http.Client, error) {
	var pool *x509.CertPool
	if caFile != "" {
		var err error
		if pool, err = CAPool(caFile); err != nil {
			return nil, err
		}
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: sse.DefaultConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   sse.DefaultConnectTimeout,
		ResponseHeaderTimeout: sse.DefaultResponseHeaderTimeout,
		IdleConnTimeout:       90 * time.Second,
	}}, nil
}
