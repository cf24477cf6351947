package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// chromiumTab is one tab of a headless Chromium that a test starts for
// itself, with script execution off, since the pages must work without it
// (their CSP allows none). newChromium starts it; the test's cleanup closes
// the tab, then the browser, then its deadline.
type chromiumTab struct {
	t         *testing.T
	ctx       context.Context // the deadline of the test's browser work
	tab       context.Context // chromedp's context of the tab, under ctx
	artifacts string
	started   time.Time // when the browser was asked to start
	console   consoleLog
}

// newChromium launches the browser at execPath (from chromiumPath) for at most
// timeout, with a 1280×900 window, no network beyond 127.0.0.1 and a fresh
// profile, and listens to what its pages log.
func newChromium(t *testing.T, execPath string, timeout time.Duration) *chromiumTab {
	t.Helper()
	c := &chromiumTab{t: t, artifacts: artifactsDir(t)}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	c.ctx = ctx

	// Under the full suite's load Chromium now and then exits at once
	// ("chrome failed to start", seen once in CI); a fresh attempt with a
	// fresh profile starts. Anything after the start is not retried.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = c.start(ctx, execPath, attempt); err == nil {
			break
		}
		t.Logf("chromium did not start (attempt %d): %v", attempt, err)
		time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("start chromium %s: %v", execPath, err)
	}
	t.Logf("chromium started in %v", time.Since(c.started).Round(time.Millisecond))
	if err := chromedp.Listen(c.tab, c.console.listen); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(c.tab, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatalf("disable script: %v", err)
	}
	return c
}

// start launches one browser process under ctx and opens its tab.
func (c *chromiumTab) start(ctx context.Context, execPath string, attempt int) error {
	t := c.t
	var browserOut syncBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		// The browser talks to the loopback servers of this test and to
		// nothing else: no proxy, and no name resolves.
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), fmt.Sprintf("chromium-profile-%d", attempt))),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(&browserOut),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc) // waits for the browser to exit
	bctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chromium output:\n%s", browserOut.String())
		}
	})
	c.tab = bctx

	c.started = time.Now()
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		cancelTab()
		cancelAlloc()
		return fmt.Errorf("%w\n%s", err, browserOut.String())
	}
	return nil
}

// screenshots saves full-page screenshots of the current page at 1280 and 360
// pixels wide as browser-<name>-1280.png and browser-<name>-360.png in the
// artifacts directory, then goes back to the desktop viewport.
func (c *chromiumTab) screenshots(name string) {
	c.t.Helper()
	desktop := chromedp.EmulateViewport(1280, 900)
	for _, v := range []struct {
		label string
		size  chromedp.Action[chromedp.Void]
	}{{"1280", desktop}, {"360", chromedp.EmulateViewport(360, 740)}} {
		if err := chromedp.Do(c.tab, v.size); err != nil {
			c.t.Fatalf("viewport %s: %v", v.label, err)
		}
		png, err := chromedp.Run(c.tab, chromedp.FullScreenshot(100))
		if err != nil {
			c.t.Fatalf("screenshot of the %s page at %s px: %v", name, v.label, err)
		}
		path := filepath.Join(c.artifacts, fmt.Sprintf("browser-%s-%s.png", name, v.label))
		if err := os.WriteFile(path, png, 0o644); err != nil {
			c.t.Fatal(err)
		}
		c.t.Logf("screenshot: %s", path)
	}
	if err := chromedp.Do(c.tab, desktop); err != nil {
		c.t.Fatal(err)
	}
}

// checkPage asserts what every page shows: its stylesheet applied (under
// CSP style-src 'self'), no script element, and each of want in its HTML,
// which it returns.
func (c *chromiumTab) checkPage(name string, want ...string) string {
	c.t.Helper()
	html, err := documentHTML(c.tab)
	if err != nil {
		c.t.Fatalf("%s page: %v", name, err)
	}
	if strings.Contains(strings.ToLower(html), "<script") {
		c.t.Errorf("%s page has a script element", name)
	}
	for _, w := range want {
		if !strings.Contains(html, w) {
			c.t.Errorf("%s page lacks %q:\n%s", name, w, html)
		}
	}
	style, err := chromedp.Run(c.tab, chromedp.ComputedStyle(chromedp.CSS("body")))
	if err != nil {
		c.t.Fatalf("%s page: computed style: %v", name, err)
	}
	found := false
	for _, p := range style {
		if p.Name != "background-color" {
			continue
		}
		found = true
		if p.Value != "rgb(243, 245, 248)" {
			c.t.Errorf("%s page: body background %s: postern.css did not apply", name, p.Value)
		}
	}
	if !found {
		c.t.Errorf("%s page: body has no computed background-color: cannot tell postern.css applied", name)
	}
	return html
}

// reportConsole logs what the pages logged and fails the test for a CSP
// violation, an exception or any console call.
func (c *chromiumTab) reportConsole() {
	c.t.Helper()
	entries, bad := c.console.snapshot()
	for _, e := range entries {
		c.t.Logf("browser log: %s", e)
	}
	for _, b := range bad {
		c.t.Errorf("browser reported: %s", b)
	}
}
