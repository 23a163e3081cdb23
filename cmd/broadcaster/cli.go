package main

import (
	"context"
	"maps"
	"slices"
)

// subcommands talk to a running broadcaster (or, for keygen, to no one).
var subcommands = map[string]func(ctx context.Context, args []string, env cliEnv) error{}

func subcommandNames() []string { return slices.Sorted(maps.Keys(subcommands)) }
