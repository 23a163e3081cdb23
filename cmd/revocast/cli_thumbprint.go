package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/revocast/revocast/pkg/agent"
)

const thumbprintAbout = `Prints the RFC 7638 thumbprint of every key in PEM files (public keys or
certificates) or JWKS documents: the name a kid revocation gives a key. Talks to no server.

A kid revocation matches every token whose signature verifies with the key it names, by
its kid in the JWKS or by this thumbprint (the only name a bare PEM key has); a token's
own header cannot hide it. One line per key: thumbprint, type, then kid, alg and use when
the JWK has them, and why an agent would skip the key. "-" reads standard input.

  revocast thumbprint issuer.pem
  curl -s https://idp.example/.well-known/jwks.json | revocast thumbprint -`

func cmdThumbprint(_ context.Context, args []string, env cliEnv) error {
	var asJSON bool
	fs := newCmdFlags("thumbprint", "FILE...", thumbprintAbout, env)
	fs.FlagSet.BoolVar(&asJSON, "json", false, "print one JSON object per key: file, thumbprint, type, kid, alg, use, skipped")
	files, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageErr("thumbprint: name at least one PEM or JWKS file (- for standard input)")
	}
	for _, name := range files {
		var data []byte
		if name == "-" {
			data, err = io.ReadAll(io.LimitReader(env.stdin, 4<<20))
		} else {
			data, err = os.ReadFile(name)
		}
		if err != nil {
			return &exitError{exitInvalid, fmt.Errorf("thumbprint: %w", err)}
		}
		keys, err := agent.DescribeKeys(data)
		if err != nil {
			return &exitError{exitInvalid, fmt.Errorf("thumbprint: %s: %w", name, err)}
		}
		for _, k := range keys {
			if asJSON {
				if err := writeJSONLine(env.stdout, struct {
					File string `json:"file"`
					agent.KeyDescription
				}{name, k}); err != nil {
					return err
				}
				continue
			}
			line := []string{k.Thumbprint, k.Type}
			for _, f := range [...]struct{ name, value string }{{"kid", k.Kid}, {"alg", k.Alg}, {"use", k.Use}} {
				if f.value != "" {
					line = append(line, f.name+"="+f.value)
				}
			}
			if k.Skipped != "" {
				line = append(line, "skipped: "+k.Skipped)
			}
			if _, err := fmt.Fprintln(env.stdout, strings.Join(line, "  ")); err != nil {
				return err
			}
		}
	}
	return nil
}
