package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// demoFiles are the SHA-256 of the demo credential files shipped in
// deployments/ (compose/demo-* and kubernetes/demo/demo-*): everyone who has
// the repository has them, so they are refused beyond loopback unless
// --insecure. A test keeps this list equal to the files.
var demoFiles = map[string]string{
	"6482ee2ab0635d05fc9091be1cd8948c5090c268f4819f56b474c551f7a3699e": "demo-api-keys.txt",
	"bb18e3c1a7b1f500a3dd826c40b0344a2ca92e2011d01ffb453f9addce441ad3": "demo-cluster-secret",
	"cd42fcf5e6946ab75ed36afb2a2ab9fba69f66dbd004b7e709d80af32f128014": "demo-agent.token",
}

// demoKeyHashes are the SHA-256 of the demo secrets themselves, so that a
// demo key still counts once lines are added to its file: the demo API key
// (as an --api-keys line holds it) and the demo cluster secret.
var demoKeyHashes = map[string]string{
	"eae14f3150fd896ad8c38b650a7a73efb4480b712b897ca2a5870af1da6a3613": `API key "demo-agents"`,
	"4a2e7457633e6f82042173446640d90193ea09d723f06ce81b606df40d0451d5": "cluster secret",
}

// demoCredentials describes the shipped demo credentials among the files the
// server reads secrets from.
func (sf *serverFlags) demoCredentials() ([]string, error) {
	var found []string
	check := func(flag, path string) error {
		if path == "" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
		sum := sha256.Sum256(b)
		if name, ok := demoFiles[hex.EncodeToString(sum[:])]; ok {
			found = append(found, fmt.Sprintf("--%s %s is the demo file %s", flag, path, name))
			return nil
		}
		secret := sha256.Sum256([]byte(strings.TrimSpace(string(b))))
		if what, ok := demoKeyHashes[hex.EncodeToString(secret[:])]; ok {
			found = append(found, fmt.Sprintf("--%s %s holds the demo %s", flag, path, what))
			return nil
		}
		for _, field := range strings.Fields(string(b)) {
			if what, ok := demoKeyHashes[strings.ToLower(field)]; ok {
				found = append(found, fmt.Sprintf("--%s %s holds the demo %s", flag, path, what))
				return nil
			}
		}
		return nil
	}
	if err := check("api-keys", sf.apiKeys); err != nil {
		return nil, err
	}
	if err := check("cluster-secret-file", sf.clusterSecretFile); err != nil {
		return nil, err
	}
	if err := check("token-hmac-secret-file", sf.token.hmacFile); err != nil {
		return nil, err
	}
	return found, nil
}
