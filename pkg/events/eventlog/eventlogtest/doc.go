// Package eventlogtest is the conformance test of eventlog.Log: TestLog
// runs the same behaviours against any implementation (memlog and natslog
// call it from their tests). It is for tests only.
package eventlogtest
