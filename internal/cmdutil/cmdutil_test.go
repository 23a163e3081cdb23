package cmdutil_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/revocast/revocast/internal/cmdutil"
	"github.com/revocast/revocast/internal/testutil"
)

func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		level, format string
		wantErr       string // the flag the error names, "" for none
		wantOut       string // what an Info line contains
	}{
		{"info", "text", "", "level=INFO msg=hello"},
		{"debug", "JSON", "", `"msg":"hello"`},
		{"error", "text", "", ""}, // info is below the level
		{"loud", "text", "log-level", ""},
		{"info", "yaml", "log-format", ""},
	} {
		t.Run(tc.level+"/"+tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := cmdutil.NewLogger(&buf, tc.level, tc.format)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Info("hello")
			if got := buf.String(); (tc.wantOut == "") != (got == "") || !strings.Contains(got, tc.wantOut) {
				t.Errorf("logged %q, want %q", got, tc.wantOut)
			}
		})
	}
}

func TestCAPool(t *testing.T) {
	caFile, _, _ := testutil.TLSFiles(t)
	if _, err := cmdutil.CAPool(caFile); err != nil {
		t.Errorf("a CA file: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cmdutil.CAPool(empty); !errors.Is(err, cmdutil.ErrNoCertificate) {
		t.Errorf("a file without certificates: err = %v, want ErrNoCertificate", err)
	}
	if _, err := cmdutil.CAPool(filepath.Join(t.TempDir(), "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: err = %v, want os.ErrNotExist", err)
	}
}

// TestHTTPClientTrustsOnlyTheCAFile: with --ca-file, a server whose
// certificate that CA signed is trusted and one signed by another CA is
// not, even one the client would trust by default (httptest's own).
func TestHTTPClientTrustsOnlyTheCAFile(t *testing.T) {
	caFile, certFile, keyFile := testutil.TLSFiles(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }
	ours := httptest.NewUnstartedServer(http.HandlerFunc(ok))
	ours.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ours.StartTLS()
	t.Cleanup(ours.Close)
	other := httptest.NewTLSServer(http.HandlerFunc(ok))
	t.Cleanup(other.Close)

	hc, err := cmdutil.HTTPClient(caFile)
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string) error {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	if err := get(ours.URL); err != nil {
		t.Errorf("the server the CA file signed: %v", err)
	}
	if err := get(other.URL); err == nil {
		t.Error("a server another CA signed was trusted")
	}
	if _, err := cmdutil.HTTPClient(""); err != nil {
		t.Errorf("without a CA file: %v", err)
	}
}
