package natslog

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDataDirLock: while a Log runs an embedded server on a data directory,
// a second one on the same directory is refused with the holder's pid; it
// is free again once the first is closed.
func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	first := openLog(t, dir)

	tests := []struct{ name, dataDir, shown string }{
		{"same path", dir, dir},
		{"another spelling", dir + "/./", dir + "/./"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Connect(Config{DataDir: tc.dataDir})
			if err == nil {
				l.Close()
				t.Fatal("a second log opened the same data directory")
			}
			want := tc.shown + " is in use by pid " + strconv.Itoa(os.Getpid())
			if !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want ErrDataDirInUse saying %q", err, want)
			}
		})
	}
	b, err := os.ReadFile(filepath.Join(dir, lockFileName))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q, %v", b, err)
	}

	first.Close()
	second, err := Connect(Config{DataDir: dir})
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	second.Close()
}
