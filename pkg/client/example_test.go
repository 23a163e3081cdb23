package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/client"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/natslog"
)

// exampleBroadcaster runs a broadcaster with embedded NATS in a temporary
// directory, for the examples; stop shuts it down.
func exampleBroadcaster() (base string, stop func()) {
	dir, err := os.MkdirTemp("", "revocast-example-")
	if err != nil {
		log.Fatal(err)
	}
	s, err := broadcaster.New(broadcaster.Config{Addr: "127.0.0.1:0", Backend: natslog.Config{DataDir: dir}, Heartbeat: time.Second})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		log.Fatal(err)
	}
	select {
	case <-s.Ready():
	case <-ctx.Done():
		log.Fatal("broadcaster not ready")
	}
	return "http://" + s.Addr(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
		defer cancel()
		_ = s.Shutdown(ctx)
		_ = os.RemoveAll(dir)
	}
}

// Log a user out everywhere, then lift it by the same matchers.
func ExampleClient_Revoke() {
	base, stop := exampleBroadcaster()
	defer stop()
	ctx := context.Background()
	// In a real program: client.New("https://revocast.example.com",
	// client.WithToken(os.Getenv("REVOCAST_TOKEN"))).
	c, err := client.New(base)
	if err != nil {
		log.Fatal(err)
	}
	st, err := c.Revoke(ctx, events.Revocation{Sub: "alice", Reason: "logged out"},
		client.WriteOptions{IdempotencyKey: "logout-alice-1"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Status, st.Sub, st.Reason)

	lifted, err := c.LiftMatching(ctx, events.Revocation{Sub: "alice"}, client.WriteOptions{Reason: "appeal"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(lifted.Key == st.Key)
	// Output:
	// created alice logged out
	// true
}

// An answer that is not a success keeps the server's message and field.
func ExampleError() {
	base, stop := exampleBroadcaster()
	defer stop()
	c, _ := client.New(base)
	_, err := c.Revoke(context.Background(), events.Revocation{}, client.WriteOptions{})
	var ae *client.Error
	if errors.As(err, &ae) {
		fmt.Println(ae.Status, errors.Is(err, client.ErrInvalid), ae.Field)
	}
	// Output:
	// 400 true jti
}

// Revoke every jti of a file, in batches, resumable from a checkpoint.
func ExampleBulk() {
	base, stop := exampleBroadcaster()
	defer stop()
	c, _ := client.New(base)
	b := client.NewBulk(c)
	b.BatchSize = 2
	b.Reason = "leaked"
	b.OnCommit = func(cp client.Checkpoint) error {
		// save cp (and b.RunID) to resume an interrupted run with b.Resume
		return nil
	}
	res, err := b.Run(context.Background(), strings.NewReader("# leaked tokens\njti-1\njti-2\njti-3\n"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Done, res.Created, res.SkippedLines)
	// Output:
	// 3 3 1
}
