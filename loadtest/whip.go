package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// StatusError is a non-2xx answer from a WHIP/WHEP endpoint.
type StatusError struct {
	Code int
	Msg  string // the server's {"error": ...} text, or the body
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Code, http.StatusText(e.Code), e.Msg)
}

// Session is a created WHIP or WHEP resource.
type Session struct {
	Location string // absolute URL of the session resource
	ETag     string
	Answer   string
	Links    []string
	client   *http.Client
	token    string
}

// postOffer sends an SDP offer to a WHIP/WHEP endpoint and returns the
// created session.
func postOffer(ctx context.Context, client *http.Client, endpoint, token, offer string) (*Session, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(offer))
	if err != nil {
		return nil, fmt.Errorf("whip: %w", err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("whip: post %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("whip: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, statusError(resp.StatusCode, body)
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("whip: 201 without a usable Location: %w", err)
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

func statusError(code int, body []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return &StatusError{Code: code, Msg: msg}
}

// Delete ends the session.
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
		return fmt.Errorf("whip: delete: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return statusError(resp.StatusCode, body)
	}
	return nil
}

// withQuery adds query parameters to a URL.
func withQuery(raw string, q url.Values) (string, error) {
	if len(q) == 0 {
		return raw, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	v := u.Query()
	for k, vs := range q {
		for _, x := range vs {
			v.Add(k, x)
		}
	}
	u.RawQuery = v.Encode()
	return u.String(), nil
}
