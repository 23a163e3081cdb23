package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Dist summarises durations, in milliseconds.
type Dist struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// distOf sorts ns (nanoseconds) in place and summarises it; percentiles
// are nearest-rank.
func distOf(ns []int64) Dist {
	if len(ns) == 0 {
		return Dist{}
	}
	slices.Sort(ns)
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ns)))) - 1
		return ms(ns[max(0, min(i, len(ns)-1))])
	}
	return Dist{N: len(ns), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(ns[len(ns)-1]), Mean: sum / float64(len(ns)) / 1e6}
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

func (d Dist) String() string {
	if d.N == 0 {
		return "no samples"
	}
	return "p50 " + fmtMs(d.P50) + " · p99 " + fmtMs(d.P99) + " · max " + fmtMs(d.Max)
}

func fmtMs(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + " s"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	}
}

// fmtInt writes n with thousands separators.
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtRate(perSec float64) string { return fmtInt(int64(math.Round(perSec))) + "/s" }

func fmtBytes(b float64) string {
	switch {
	case math.Abs(b) >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case math.Abs(b) >= 10_000:
		return fmt.Sprintf("%.1f KB", b/1000)
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}

// verdict compares a measured value with a target: at most (max) or at
// least (!max).
func verdict(measured, target float64, atMost bool) string {
	if math.IsNaN(measured) {
		return "-"
	}
	if atMost && measured <= target || !atMost && measured >= target {
		return "ok"
	}
	return "MISS"
}
