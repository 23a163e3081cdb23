package sse

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"
)

func BenchmarkAppendEvent(b *testing.B) {
	ev := Event{
		ID:    "1731000000-123456",
		Type:  "revoke",
		Data:  []byte(`{"jti":"6f1c2b1e-5d1a-4c8e-9a59-3b1f0e7d2c11","iss":"https://issuer.example","exp":1731003600}`),
		Retry: 3 * time.Second,
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(len(ev.Data)))
	for b.Loop() {
		var err error
		if buf, err = AppendEvent(buf[:0], ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecoder(b *testing.B) {
	const events = 10_000
	var stream []byte
	for i := range events {
		stream, _ = AppendEvent(stream, Event{
			ID:   "1731000000-" + strconv.Itoa(i),
			Type: "revoke",
			Data: []byte(`{"jti":"6f1c2b1e-5d1a-4c8e-9a59-3b1f0e7d2c11","iss":"https://issuer.example","exp":1731003600}`),
		})
		if i%100 == 0 {
			stream = AppendComment(stream, "ping")
		}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	n := 0
	for b.Loop() {
		d := NewDecoder(bytes.NewReader(stream))
		for range events + 1 {
			if _, err := d.Next(); err != nil {
				if !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
				break
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
