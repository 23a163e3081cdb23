// Package api holds the OpenAPI 3.1 description of the broadcaster's HTTP
// API: every path and method, the roles they need, their status codes and
// the JSON schemas of their bodies and of the events of the SSE stream. The
// broadcaster serves it at GET /v1/openapi.json, and a contract test in
// internal/broadcaster checks the handlers' real answers against it, so a
// change to the API shows up here or fails that test.
package api

import _ "embed"

// OpenAPI is openapi.json, the OpenAPI 3.1 document of the broadcaster API.
//
//go:embed openapi.json
var OpenAPI []byte
