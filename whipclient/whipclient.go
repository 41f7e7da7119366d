// Package whipclient is the HTTP side of a WHIP or WHEP client (RFC 9725):
// it posts an SDP offer, keeps the created session resource, and deletes
// it. The load generator's peers and the HLS bridge's WHEP source share it.
package whipclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Errors a refusal matches with errors.Is.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrNotFound     = errors.New("not found")
)

// StatusError is an endpoint's answer other than the one expected.
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
		hint = " (the token does not allow this)"
	case http.StatusNotFound:
		hint = " (no such room or session, or nobody is publishing)"
	}
	return fmt.Sprintf("HTTP %d %s%s: %s", e.Code, http.StatusText(e.Code), hint, e.Message)
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

// Session is a created WHIP or WHEP resource.
type Session struct {
	Location string // absolute URL of the session resource
	ETag     string
	Answer   string   // the SDP answer
	Links    []string // Link headers (ICE servers)
	client   *http.Client
	token    string
}

// Post sends an SDP offer to a WHIP or WHEP endpoint, with the bearer token
// when given, and returns the session the 201 created.
func Post(ctx context.Context, client *http.Client, endpoint, token, offer string) (*Session, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(offer))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("post offer to %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, statusError(resp.StatusCode, body)
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("201 without a usable Location: %w", err)
	}
	return &Session{
		Location: loc.String(),
		ETag:     resp.Header.Get("ETag"),
		Answer:   string(body),
		Links:    resp.Header.Values("Link"),
		client:   client,
		token:    token,
	}, nil
}

// Delete ends the session. A 404 means it had already ended, which is what
// was wanted.
func (s *Session) Delete(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.Location, nil)
	if err != nil {
		return err
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotFound {
		return nil
	}
	return fmt.Errorf("delete session: %w", statusError(resp.StatusCode, body))
}
