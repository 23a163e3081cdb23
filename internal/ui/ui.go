// Package ui is the broadcaster's dashboard: static files embedded in the
// binary and served at /ui/. They hold no data and need no credential; the
// page asks the API for everything it shows, with the credential the user
// types into it (an API key or operator JWT, sent as Authorization: Bearer,
// never a cookie), so the API's access rules apply unchanged: a reader sees,
// a revoker acts.
//
// The files are served with a strict Content-Security-Policy: scripts,
// styles, images and connections from the page's own origin only, no inline
// script or style, no framing.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Prefix is the path the dashboard is served under.
const Prefix = "/ui/"

// ContentSecurityPolicy is sent with every file of the dashboard.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

var fileServer = func() http.Handler {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.StripPrefix(Prefix, http.FileServerFS(files))
}()

// Handler serves the dashboard's files under Prefix.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		// the files change with the binary: revalidate rather than cache
		h.Set("Cache-Control", "no-cache")
		fileServer.ServeHTTP(w, r)
	})
}
