// Package envflag registers command-line flags that fall back to REVOCAST_*
// environment variables, so that every setting of the revocast binaries can
// come from a flag, from the environment (containers, systemd) or from its
// default, in that order. The usage text names each flag's variable.
//
// A Set is not safe for concurrent use; build it, parse, then read.
package envflag

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Prefix starts every environment variable name.
const Prefix = "REVOCAST_"

// EnvName is the variable that backs a flag: "max-token-lifetime" →
// "REVOCAST_MAX_TOKEN_LIFETIME".
func EnvName(flagName string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Set is a flag.FlagSet whose flags also read the environment.
type Set struct {
	*flag.FlagSet
	getenv func(string) string
	envErr []error
	names  []string
}

// New returns a Set; getenv is os.Getenv outside tests.
func New(name string, getenv func(string) string, output io.Writer) *Set {
	if getenv == nil {
		getenv = os.Getenv
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	s := &Set{FlagSet: fs, getenv: getenv}
	return s
}

// Var registers v under name, first setting it from the environment when the
// variable is set.
func (s *Set) Var(v flag.Value, name, usage string) {
	env := EnvName(name)
	if val, ok := lookup(s.getenv, env); ok {
		if err := v.Set(val); err != nil {
			s.envErr = append(s.envErr, fmt.Errorf("%s=%q: %w", env, val, err))
		}
	}
	if r, ok := v.(interface{ replaceOnNextSet() }); ok {
		r.replaceOnNextSet()
	}
	s.names = append(s.names, name)
	s.FlagSet.Var(v, name, usage+" ($"+env+")")
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// String registers a string flag.
func (s *Set) String(p *string, name, def, usage string) {
	*p = def
	s.Var((*stringValue)(p), name, usage)
}

// Bool registers a boolean flag.
func (s *Set) Bool(p *bool, name string, def bool, usage string) {
	*p = def
	s.Var((*boolValue)(p), name, usage)
}

// Int registers an integer flag.
func (s *Set) Int(p *int, name string, def int, usage string) {
	*p = def
	s.Var((*intValue)(p), name, usage)
}

// Int64 registers a 64-bit integer flag.
func (s *Set) Int64(p *int64, name string, def int64, usage string) {
	*p = def
	s.Var((*int64Value)(p), name, usage)
}

// Duration registers a duration flag ("15s", "24h").
func (s *Set) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	s.Var((*durationValue)(p), name, usage)
}

// List registers a repeatable flag; each use (and each comma-separated item
// of the environment variable or of one use) adds an element. A flag given
// on the command line replaces what the environment set.
func (s *Set) List(p *[]string, name string, def []string, usage string) {
	*p = slices.Clone(def)
	s.Var(&listValue{p: p, replace: true}, name, usage)
}

// Parse parses args; an invalid environment variable is an error too. The
// command line is parsed first, so that --help and --flags-json work
// whatever the environment holds.
func (s *Set) Parse(args []string) error {
	if err := s.FlagSet.Parse(args); err != nil {
		return err
	}
	return errors.Join(s.envErr...)
}

// Names lists the registered flags in registration order.
func (s *Set) Names() []string { return slices.Clone(s.names) }

type stringValue string

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string     { return string(*v) }

type boolValue bool

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }

type intValue int

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want an integer")
	}
	*v = intValue(n)
	return nil
}
func (v *intValue) String() string { return strconv.Itoa(int(*v)) }

type int64Value int64

func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("want an integer")
	}
	*v = int64Value(n)
	return nil
}
func (v *int64Value) String() string { return strconv.FormatInt(int64(*v), 10) }

type durationValue time.Duration

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 15s or 24h")
	}
	*v = durationValue(d)
	return nil
}
func (v *durationValue) String() string { return time.Duration(*v).String() }

type listValue struct {
	p       *[]string
	replace bool // the next Set replaces the default or environment value
}

func (v *listValue) replaceOnNextSet() { v.replace = true }

func (v *listValue) Set(s string) error {
	var items []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	if v.replace {
		*v.p, v.replace = nil, false
	}
	*v.p = append(*v.p, items...)
	return nil
}

func (v *listValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

// Uint64 registers an unsigned integer flag.
func (s *Set) Uint64(p *uint64, name string, def uint64, usage string) {
	*p = def
	s.Var((*uint64Value)(p), name, usage)
}

type uint64Value uint64

func (v *uint64Value) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return errors.New("want a non-negative integer")
	}
	*v = uint64Value(n)
	return nil
}
func (v *uint64Value) String() string { return strconv.FormatUint(uint64(*v), 10) }

// Float64 registers a floating-point flag.
func (s *Set) Float64(p *float64, name string, def float64, usage string) {
	*p = def
	s.Var((*float64Value)(p), name, usage)
}

type float64Value float64

func (v *float64Value) Set(s string) error {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("want a number")
	}
	*v = float64Value(n)
	return nil
}
func (v *float64Value) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }

// FlagInfo describes one flag for machine-readable listings, so that
// deployment manifests can be checked against the flags a binary has.
type FlagInfo struct {
	Name    string `json:"name"`
	Env     string `json:"env"`
	Default string `json:"default"`
	Usage   string `json:"usage"`
	Type    string `json:"type"`
}

// Flags lists the registered flags in registration order.
func (s *Set) Flags() []FlagInfo {
	out := make([]FlagInfo, 0, len(s.names))
	for _, name := range s.names {
		f := s.Lookup(name)
		if f == nil {
			continue
		}
		env := EnvName(name)
		out = append(out, FlagInfo{
			Name:    name,
			Env:     env,
			Default: f.DefValue,
			Usage:   strings.TrimSuffix(f.Usage, " ($"+env+")"),
			Type:    strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%T", f.Value), "*envflag."), "Value"),
		})
	}
	return out
}

// Names of the mode flags (see Mode).
const (
	FlagsJSONName   = "flags-json"
	CheckConfigName = "check-config"
)

// Mode registers a boolean flag that switches the program into another
// mode instead of configuring it, such as --flags-json or --check-config.
// The caller checks it after Parse. It has no environment variable (one
// left in a container's environment must not keep it from serving) and it
// is not in Names or Flags: it is not configuration.
func (s *Set) Mode(p *bool, name, usage string) {
	s.FlagSet.BoolVar(p, name, false, usage+" (no environment variable)")
}

// AddFlagsJSON registers --flags-json into p: when set, even if Parse
// failed on the environment, the program prints WriteFlagsJSON to stdout and
// exits 0 without starting anything.
func (s *Set) AddFlagsJSON(p *bool) {
	s.Mode(p, FlagsJSONName, "print the flags as a JSON array (name, env, default, usage, type) and exit without starting anything")
}

// AddCheckConfig registers --check-config into p: when set, the program
// parses and validates its configuration (reading the files it names),
// prints nothing but errors, and exits 0 if it would start, without
// listening or connecting anywhere.
func (s *Set) AddCheckConfig(p *bool) {
	s.Mode(p, CheckConfigName, "check the configuration (flags, variables, the files they name) and exit: 0 if valid, without listening or connecting")
}

// WriteFlagsJSON writes Flags as an indented JSON array.
func (s *Set) WriteFlagsJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s.Flags())
}
