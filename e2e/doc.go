// Package e2e holds Starling's end-to-end tests. They build the starling
// binary, start it as a user would, and drive real clients against it:
// headless Chromium (through chromedp) publishing with WHIP and watching with
// WHEP from the embedded web pages.
//
// Run them with
//
//	go test ./e2e -v
//
// They are skipped with -short. Environment:
//
//	STARLING_BIN        test this binary instead of building ./cmd/starling
//	CHROMIUM            the browser to run (default /usr/bin/chromium); when it
//	                    is missing the tests skip, or fail when CI is set
//	E2E_SCREENSHOT_DIR  keep a screenshot of every page here
package e2e
