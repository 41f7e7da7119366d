package webhooks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
	"github.com/livekit/protocol/webhook"
)

// tokenLifetime is how long a delivery's signature is valid, as in LiveKit.
const tokenLifetime = 5 * time.Minute

// deliver sends ev to e, retrying network errors, 429 and 5xx with
// exponential backoff, and counts the outcome. The body is what LiveKit
// sends: protojson with its default options (camelCase names, unset fields
// left out).
func (n *Notifier) deliver(e *endpoint, ev *livekit.WebhookEvent) {
	if n.ctx.Err() != nil {
		n.dropped.Add(1) // Close gave up waiting; it logs the total.
		return
	}
	body, err := protojson.Marshal(ev)
	if err != nil {
		n.giveUp(e, ev, 0, fmt.Errorf("encode: %w", err))
		return
	}
	sum := sha256.Sum256(body)
	sha := base64.StdEncoding.EncodeToString(sum[:])
	for attempt := 1; ; attempt++ {
		status, err := n.post(e, body, sha)
		if err == nil && status >= 200 && status < 300 {
			n.sent.Add(1)
			return
		}
		if n.ctx.Err() != nil {
			n.dropped.Add(1)
			return
		}
		if err == nil {
			err = fmt.Errorf("receiver answered %d", status)
		}
		n.failed.Add(1)
		n.log.Warn("webhook delivery failed", eventAttrs(ev, e, "attempt", attempt, "status", status, "err", err)...)
		if !retryable(status) || attempt >= n.cfg.Attempts || !n.sleep(n.cfg.Backoff<<(attempt-1)) {
			n.giveUp(e, ev, attempt, err)
			return
		}
	}
}

// giveUp drops ev.
func (n *Notifier) giveUp(e *endpoint, ev *livekit.WebhookEvent, attempts int, err error) {
	n.dropped.Add(1)
	n.log.Error("webhook dropped", eventAttrs(ev, e, "attempts", attempts, "err", err)...)
}

// retryable reports whether a failed attempt may succeed later: no answer
// (status 0), too many requests, or a server error.
func retryable(status int) bool {
	return status == 0 || status == http.StatusTooManyRequests || status >= 500
}

// sleep waits d, or less if the Notifier is abandoning deliveries; it
// reports whether the whole wait passed.
func (n *Notifier) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.ctx.Done():
		return false
	}
}

// post makes one attempt: body signed by a fresh token whose sha256 claim is
// the body's digest, as webhook.Receive checks. It returns the status, or an
// error when no answer came.
func (n *Notifier) post(e *endpoint, body []byte, sha string) (int, error) {
	token, err := auth.NewAccessToken(n.cfg.APIKey, n.cfg.APISecret).
		SetValidFor(tokenLifetime).SetSha256(sha).ToJWT()
	if err != nil {
		return 0, fmt.Errorf("sign: %w", err)
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", webhook.ContentType)
	req.Header.Set("User-Agent", "Starling")
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		// A url.Error repeats the URL, credentials and query included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, err
	}
	defer resp.Body.Close()
	// Read a little of the answer so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}
