package broadcaster_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/revocast/revocast/internal/testutil"
)

// attackPage is a page of another origin that tries, from a real browser,
// every write a page can send without the server's consent: text/plain
// and form bodies (CORS "simple" requests, sent without a preflight) and a
// JSON body (which needs a preflight). It records what fetch reported.
const attackPage = `<!doctype html>
<title>attack</title>
<script>
const target = %q;
const token = %q;
const attempts = [
  ["text/plain revocation", target + "/v1/revocations", {method: "POST", mode: "no-cors",
    headers: {"Content-Type": "text/plain"}, body: '{"sub":"victim","ban":true}'}],
  ["form revocation", target + "/v1/revocations", {method: "POST", mode: "no-cors",
    headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: 'sub=victim'}],
  ["form RFC 7009", target + "/v1/revoke", {method: "POST", mode: "no-cors",
    headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "token=" + encodeURIComponent(token)}],
  ["text/plain RFC 7009", target + "/v1/revoke", {method: "POST", mode: "no-cors",
    headers: {"Content-Type": "text/plain"}, body: "token=" + encodeURIComponent(token)}],
  ["JSON revocation", target + "/v1/revocations", {method: "POST",
    headers: {"Content-Type": "application/json"}, body: '{"sub":"victim","ban":true}'}],
];
window.results = [];
(async () => {
  for (const [name, url, init] of attempts) {
    try {
      const r = await fetch(url, init);
      window.results.push(name + ": " + r.type + " " + r.status);
    } catch (e) {
      window.results.push(name + ": " + e);
    }
  }
  window.done = true;
})();
</script>`

// TestBrowserOnAnotherOriginCannotWrite drives a headless Chromium to a
// page served from another origin (another port on 127.0.0.1), which
// posts to a broadcaster without credentials on loopback. Nothing may be
// stored.
func TestBrowserOnAnotherOriginCannotWrite(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a browser; skipped under -short")
	}
	bin := testutil.Chromium(t)
	s, base := startServer(t, nil)
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	token := unsignedJWT(`{"jti":"browser-csrf","sub":"victim","exp":` + exp + `}`)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, attackPage, base, token)
	}))
	defer page.Close()
	if u, _ := url.Parse(page.URL); u.Host == strings.TrimPrefix(base, "http://") {
		t.Fatal("the page must be on another origin")
	}
	head := headSeqOf(t, s)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // containers and root
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx,
		chromedp.Navigate(page.URL),
		chromedp.Poll[chromedp.Void](`window.done === true`, chromedp.WithPollingTimeout(testutil.HangLimit)),
	); err != nil {
		t.Fatalf("browser: %v", err)
	}
	results, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`window.results`))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	t.Logf("what the page's fetch calls reported: %q", results)
	if len(results) != 5 {
		t.Fatalf("the page ran %d of 5 attempts: %q", len(results), results)
	}
	// the answers, at the server: nothing stored
	if got := headSeqOf(t, s); got != head {
		var list listAnswer
		do(t, "GET", base+"/v1/revocations", "").decode(t, &list)
		t.Fatalf("a page of another origin changed the log (head %d -> %d): %s", head, got, list.Revocations)
	}
}
