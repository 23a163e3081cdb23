// Package sse implements the Server-Sent Events wire format of the WHATWG
// HTML standard ("9.2 Server-sent events"): encoding events on the server
// side, and parsing and following a stream, with reconnection, on the client
// side. It knows nothing about what the events carry.
//
// Server side: AppendEvent, AppendComment and AppendRetry encode frames into a
// caller's buffer without allocating, so a fan-out can encode an event once
// and hand the same bytes to thousands of subscribers. Start turns an
// http.ResponseWriter into a Stream that writes frames with a per-write
// deadline and flushes each one; Stream.Serve pumps frames from a channel and
// sends heartbeat comments while the channel is quiet. cmd/broadcaster writes
// its streams with these.
//
// Client side: a Decoder parses a byte stream into events exactly as a browser's
// EventSource would (BOM, CR/LF/CRLF line ends, comments, field rules,
// dispatch on a blank line, discarding an event cut off at EOF). A Client
// follows a stream across reconnections: it resends Last-Event-ID, honours the
// server's retry field, backs off with jitter, rotates over several URLs and
// reports what happens through hooks. pkg/agent follows the broadcaster with a
// Client.
//
// The Decoder works on bytes and does not replace invalid UTF-8: data is
// handed over exactly as it arrived, which is what JSON payloads want.
//
// Concurrency: the encoding functions are safe for concurrent use. A Stream
// and a Decoder belong to one goroutine. A Client's accessor methods may be
// called from any goroutine while Run (one call at a time) follows the stream;
// its hooks and the handler are called from Run's goroutine and must not block
// for long, since the stream is not read while they run.
//
// Logging goes to a *slog.Logger passed with WithLogger; without one, nothing
// is logged.
package sse
