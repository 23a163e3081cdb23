package main

import (
	"context"
	"fmt"

	"github.com/revocast/revocast/internal/auth"
)

const keygenAbout = `Makes a new random API key (256 bits) for the broadcaster. Talks to no server.

stdout has exactly two lines, for scripts:
  line 1: the key itself: give it to the client (REVOCAST_TOKEN=…), keep it secret
  line 2: the key file line "<name> <role> <sha256>": append it to the
          broadcaster's --api-keys file, which stores the key's hash only
stderr explains this. With --json, stdout is one object: name, role, key, key_line.

  revocast keygen --name ci-deploy --role revoker
  { read -r key; read -r line; } < <(revocast keygen --name ci-deploy --role revoker 2>/dev/null)`

func cmdKeygen(_ context.Context, args []string, env cliEnv) error {
	var name, roleName string
	var asJSON bool
	fs := newCmdFlags("keygen", "--name NAME --role reader|revoker", keygenAbout, env)
	fs.FlagSet.StringVar(&name, "name", "", "who uses the key (recorded as the actor of what it posts): 1-64 letters, digits, - _ . @")
	fs.FlagSet.StringVar(&roleName, "role", "", "reader (list, tail) or revoker (also revoke and lift)")
	fs.FlagSet.BoolVar(&asJSON, "json", false, "print one JSON object instead of two lines")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("keygen: unexpected argument %q (use --name and --role)", pos[0])
	}
	if name == "" || roleName == "" {
		return usageErr("keygen: --name and --role are required")
	}
	if !auth.ValidName(name) {
		return usageErr("keygen: --name %q: want 1-64 letters, digits, '-', '_', '.', '@'", name)
	}
	role, err := auth.ParseRole(roleName)
	if err != nil {
		return usageErr("keygen: --role: %v", err)
	}
	key, err := auth.GenerateKey()
	if err != nil {
		return err
	}
	line := auth.KeyLine(name, role, key)
	if asJSON {
		return writeJSONLine(env.stdout, struct {
			Name    string `json:"name"`
			Role    string `json:"role"`
			Key     string `json:"key"`
			KeyLine string `json:"key_line"`
		}{name, role.String(), key, line})
	}
	if _, err := fmt.Fprintf(env.stdout, "%s\n%s\n", key, line); err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "Line 1 is the API key for %q (role %s): give it to the client as %s and keep it\n"+
		"secret; it is not stored anywhere and cannot be shown again.\n"+
		"Line 2 goes into the broadcaster's --api-keys file; it holds only the key's SHA-256.\n", name, role, tokenEnv)
	return nil
}
