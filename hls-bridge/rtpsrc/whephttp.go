package rtpsrc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Errors a WHEP endpoint's refusal matches with errors.Is.
var (
	ErrUnauthorized = errors.New("whep: unauthorized")
	ErrForbidden    = errors.New("whep: forbidden")
	ErrNotFound     = errors.New("whep: not found")
)

// StatusError is a WHEP endpoint's answer other than the one expected.
type StatusError struct {
	Code    int
	Message string // the server's {"error": ...} text, or the start of its body
}

func (e *StatusError) Error() string {
	hint := ""
	switch e.Code {
	case http.StatusUnauthorized:
		hint = " (token missing, invalid or expired)"
	case http.StatusForbidden:
		hint = " (the token does not allow playing this stream)"
	case http.StatusNotFound:
		hint = " (no such room or publisher, or nobody is publishing)"
	}
	return fmt.Sprintf("whep: %d %s%s: %s", e.Code, http.StatusText(e.Code), hint, e.Message)
}

// Is matches ErrUnauthorized, ErrForbidden and ErrNotFound by status code.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Code == http.StatusUnauthorized
	case ErrForbidden:
		return e.Code == http.StatusForbidden
	case ErrNotFound:
		return e.Code == http.StatusNotFound
	}
	return false
}

func statusError(code int, body []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return &StatusError{Code: code, Message: msg}
}

// postOffer sends the SDP offer and returns the answer and the session's
// absolute URL.
func postOffer(ctx context.Context, client *http.Client, endpoint, token, offer string) (answer, location string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(offer))
	if err != nil {
		return "", "", fmt.Errorf("whep: %w", err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("whep: post offer: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", "", fmt.Errorf("whep: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", "", statusError(resp.StatusCode, body)
	}
	loc, err := resp.Location()
	if err != nil {
		return "", "", fmt.Errorf("whep: 201 without a usable Location: %w", err)
	}
	return string(body), loc.String(), nil
}

// deleteSession ends the session at location. A 404 means it had already
// ended, which is what was wanted.
func deleteSession(ctx context.Context, client *http.Client, location, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, location, nil)
	if err != nil {
		return fmt.Errorf("whep: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("whep: delete session: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotFound {
		return nil
	}
	return fmt.Errorf("whep: delete session: %w", statusError(resp.StatusCode, body))
}
