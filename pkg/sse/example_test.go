package sse_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/revocast/revocast/pkg/sse"
)

func ExampleAppendEvent() {
	// Encode once; the same bytes can go to every subscriber via SendRaw.
	frame, err := sse.AppendEvent(nil, sse.Event{
		ID:   "42",
		Type: "revoke",
		Data: []byte("line one\nline two"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(frame))
	// Output:
	// id: 42
	// event: revoke
	// data: line one
	// data: line two
}

func ExampleDecoder() {
	stream := ": a comment, ignored\n" +
		"retry: 2000\n" +
		"id: 1\nevent: revoke\ndata: {\"jti\":\"a\"}\n\n" +
		"data: no id field: keeps ID 1\n\n" +
		"data: cut off before its blank line\n"
	d := sse.NewDecoder(strings.NewReader(stream))
	for {
		ev, err := d.Next()
		if err != nil {
			fmt.Println("end:", err)
			break
		}
		fmt.Printf("id=%s type=%s data=%s\n", ev.ID, ev.Type, ev.Data)
	}
	retry, _ := d.Retry()
	fmt.Println("retry:", retry)
	// Output:
	// id=1 type=revoke data={"jti":"a"}
	// id=1 type=message data=no id field: keeps ID 1
	// end: EOF
	// retry: 2s
}

func ExampleStart() {
	frames := make(chan []byte, 1)
	frame, _ := sse.AppendEvent(nil, sse.Event{ID: "1", Data: []byte("hello")})
	frames <- frame

	handler := func(w http.ResponseWriter, r *http.Request) {
		s, err := sse.Start(w, r, sse.WithRetry(3*time.Second))
		if err != nil {
			return // the status is already sent; nothing else to tell the client
		}
		// In a real server ctx also ends on shutdown (RegisterOnShutdown).
		err = s.Serve(r.Context(), frames, 15*time.Second)
		_ = err // context.Canceled once the client leaves
	}
	srv := httptest.NewServer(http.HandlerFunc(handler))
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.Header.Get("Content-Type"))
	d := sse.NewDecoder(resp.Body)
	ev, err := d.Next()
	if err != nil {
		fmt.Println(err)
		return
	}
	retry, _ := d.Retry()
	fmt.Printf("%s %s (retry %v)\n", ev.ID, ev.Data, retry)
	// Output:
	// text/event-stream
	// 1 hello (retry 3s)
}

func ExampleClient() {
	// A server that sends two events, then asks the client to stop (204).
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 1 {
			fmt.Println("reconnected with Last-Event-ID", r.Header.Get("Last-Event-ID"))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		s, err := sse.Start(w, r)
		if err != nil {
			return
		}
		_ = s.Send(sse.Event{ID: "1", Data: []byte("first")})
		_ = s.Send(sse.Event{ID: "2", Data: []byte("second")})
	}))
	defer srv.Close()

	c, err := sse.NewClient([]string{srv.URL},
		sse.WithBackoff(10*time.Millisecond, time.Second),
		sse.WithRequestHook(func(r *http.Request) { r.Header.Set("Authorization", "Bearer token") }),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	err = c.Run(context.Background(), func(ev sse.Event) error {
		fmt.Printf("event %s: %s\n", ev.ID, ev.Data)
		return nil
	})
	fmt.Println("stopped for good:", errors.Is(err, sse.ErrNoContent))
	// Output:
	// event 1: first
	// event 2: second
	// reconnected with Last-Event-ID 2
	// stopped for good: true
}
