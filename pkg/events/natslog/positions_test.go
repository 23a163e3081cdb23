package natslog

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/testutil"
)

func TestPositions(t *testing.T) {
	l := openLog(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	p, err := l.OpenPositions(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.PutAll(ctx, map[string][]byte{"a1": []byte(`{"n":1}`), "b2": []byte(`{"n":2}`)}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	seen := map[string]string{}
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- p.Watch(wctx, func(k string, v []byte) {
			mu.Lock()
			seen[k] = string(v)
			mu.Unlock()
		})
	}()
	want := func(k, v string) {
		t.Helper()
		deadline := time.Now().Add(testutil.HangLimit)
		for {
			mu.Lock()
			got := seen[k]
			mu.Unlock()
			if got == v {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("record %s = %q after %v, want %q", k, got, testutil.HangLimit, v)
			}
			time.Sleep(5 * time.Millisecond) // polling with a deadline
		}
	}
	t.Run("records written before the watch", func(t *testing.T) {
		want("a1", `{"n":1}`)
		want("b2", `{"n":2}`)
	})
	t.Run("records written after", func(t *testing.T) {
		if err := p.PutAll(ctx, map[string][]byte{"a1": []byte(`{"n":3}`)}); err != nil {
			t.Fatal(err)
		}
		want("a1", `{"n":3}`)
	})
	t.Run("invalid keys are refused", func(t *testing.T) {
		for _, k := range []string{"", "a.b", "a b", "*", strings.Repeat("k", MaxPositionKey+1)} {
			if err := p.PutAll(ctx, map[string][]byte{k: []byte("{}")}); err == nil {
				t.Errorf("key %q accepted", k)
			}
		}
	})
	wcancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}
}
