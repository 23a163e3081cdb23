//go:build !unix

package natslog

import "os"

// tryLock has no flock to take on this platform: the data directory is not
// protected against a second process.
func tryLock(*os.File) (bool, error) { return true, nil }

func unlock(*os.File) {}
