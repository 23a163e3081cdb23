package broadcaster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startPprof serves net/http/pprof on addr, a listener of its own apart
// from the API, for profiling a running broadcaster (cmd/bench uses it to
// force a GC before reading heap figures, and for CPU profiles). An empty
// addr serves nothing. Only a loopback address is accepted: profiles expose
// memory contents, and the endpoint has no credentials.
//
// The listener is closed when the server shuts down (it ends with the
// streams context). It is opened before the log, so that a bad address
// fails Start before anything else runs.
func (s *Server) startPprof(addr string) error {
	if addr == "" {
		return nil
	}
	if !isLoopback(addr) {
		return fmt.Errorf("pprof-addr %s: must be a loopback address (profiles expose memory contents)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (pprof): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // heap (?gc=1 forces a GC), goroutine, allocs, …
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: DefaultReadHeaderTimout}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("pprof server stopped", "err", err)
		}
	}()
	context.AfterFunc(s.streams, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close() // a profile in progress
		}
	})
	s.log.Info("pprof listening", "addr", ln.Addr().String())
	return nil
}
