package broadcaster

import (
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// What keeps a web page in a browser from using the broadcaster behind its
// user's back. A page may send a "simple" cross-origin request (a form or
// text/plain body, no custom header) without asking the server first, and
// the browser attaches nothing it was not told to: without credentials
// configured, such a request would be as good as the operator's.
//
//   - Bodies of the JSON endpoints must be application/json: a page can
//     send one cross-origin only after a CORS preflight, which only the
//     listed origins pass.
//   - A write (POST, PUT, PATCH, DELETE) whose Origin is neither this
//     server nor an origin listed in CORSOrigins ("*" does not count), or
//     whose Sec-Fetch-Site says another site sent it, is refused.
//   - Without credentials (and without Insecure), only loopback Host names
//     are served: a page on a name that its attacker re-binds to 127.0.0.1
//     (DNS rebinding) is same-origin to itself, not to the broadcaster, and
//     its requests carry its own name in Host.

// hostAllowed reports whether the request's Host may be served.
func (s *Server) hostAllowed(r *http.Request) bool {
	if s.auth.Enabled() || s.cfg.Insecure {
		return true
	}
	return loopbackHost(r.Host)
}

// loopbackHost reports whether a Host value names this machine's loopback:
// localhost, 127.0.0.0/8 or [::1], with any port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) refuseHost(w http.ResponseWriter, r *http.Request) {
	s.refuse(w, r, http.StatusMisdirectedRequest, "host_not_allowed",
		"Host: without credentials configured only loopback names (localhost, 127.0.0.0/8, [::1]) are served; "+
			"configure credentials to serve other names", "Host", nil)
}

// isWrite reports whether the method may change state.
func isWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// crossSite returns the header that shows a write comes from a page of
// another site, or "" when nothing does.
func (s *Server) crossSite(r *http.Request) string {
	if !isWrite(r.Method) {
		return ""
	}
	origin := r.Header.Get("Origin")
	listed := origin != "" && slices.Contains(s.cfg.CORSOrigins, origin)
	if listed {
		return ""
	}
	if origin != "" && !sameOrigin(origin, r) {
		return "Origin"
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return "Sec-Fetch-Site"
	}
	return ""
}

// sameOrigin reports whether origin names the host and port the request
// was sent to. The scheme is not compared: behind a proxy that terminates
// TLS, an https page reaches a plain HTTP listener.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(withPort(u.Host, u.Scheme), withPort(r.Host, u.Scheme))
}

func withPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return host + ":443"
	}
	return host + ":80"
}

func crossSiteMessage(field string) string {
	return field + ": writes from a page of another site are refused; list its origin in --cors-origins to allow it"
}

// isJSON reports whether the request's Content-Type is application/json
// (parameters such as charset allowed).
func isJSON(r *http.Request) bool {
	return mediaType(r) == "application/json"
}

func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// jsonBody refuses a request whose body is not declared application/json,
// with 415.
func (s *Server) jsonBody(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !isJSON(r) {
			w.Header().Set("Accept-Post", "application/json")
			s.refuse(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type",
				"Content-Type: the body must be sent as application/json", "Content-Type", nil)
			return
		}
		h(w, r)
	}
}
