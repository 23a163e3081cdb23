package testutil

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestFreeAddrOutsideEphemeralRange: the ports FreeAddr hands out are ones
// the kernel never picks for an outgoing connection's source port, are
// distinct while reserved, bind, and are released when the test ends.
func TestFreeAddrOutsideEphemeralRange(t *testing.T) {
	lo, hi := assignablePorts()
	var marks []string
	t.Run("reserve", func(t *testing.T) {
		seen := map[string]bool{}
		for range 50 {
			addr := FreeAddr(t)
			if seen[addr] {
				t.Fatalf("%s handed out twice", addr)
			}
			seen[addr] = true
			_, p, _ := net.SplitHostPort(addr)
			port, _ := strconv.Atoi(p)
			if port < lo || port > hi {
				t.Fatalf("port %d outside %d-%d", port, lo, hi)
			}
			mark := filepath.Join(reservationDir(), p)
			if _, err := os.Stat(mark); err != nil {
				t.Fatalf("port %d not reserved: %v", port, err)
			}
			marks = append(marks, mark)
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("port %d does not bind: %v", port, err)
			}
			ln.Close()
		}
	})
	for _, mark := range marks {
		if _, err := os.Stat(mark); !os.IsNotExist(err) {
			t.Errorf("reservation %s outlived its test: %v", mark, err)
		}
	}

	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skipf("no ephemeral range to compare with: %v", err)
	}
	var elo, ehi int
	if _, err := fmt.Sscan(string(b), &elo, &ehi); err != nil {
		t.Fatal(err)
	}
	if (lo >= elo && lo <= ehi) || (hi >= elo && hi <= ehi) {
		t.Errorf("range %d-%d overlaps the ephemeral range %d-%d", lo, hi, elo, ehi)
	}
}
