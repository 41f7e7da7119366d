package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// The wire protocol of docs/chat-protocol.md: what clients send, how it is
// decoded and checked, and what the server answers.

// Limits the protocol fixes; the configurable ones are in Options.
const (
	maxClientID      = 64  // bytes
	maxEmoji         = 32  // bytes
	maxQuestion      = 500 // runes
	maxOption        = 200 // runes
	minOptions       = 2
	maxOptions       = 10
	maxIdentity      = 256 // bytes, a moderation target
	maxToken         = 8 << 10
	maxHistory       = 500
	maxPollDuration  = 7 * 24 * 3600 // seconds
	maxSlowMode      = 24 * 3600     // seconds
	maxSanctionSecs  = 10 * 365 * 24 * 3600
	defaultMaxText   = 1000
	requestTypeHello = "hello"
)

// Error codes of error messages.
const (
	codeBadRequest   = "bad_request"
	codeUnknownType  = "unknown_type"
	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
	codeTooLong      = "too_long"
	codeRateLimited  = "rate_limited"
	codeSlowMode     = "slow_mode"
	codeMuted        = "muted"
	codeNoPoll       = "no_poll"
	codePollClosed   = "poll_closed"
	codeBadOption    = "bad_option"
	codeNotFound     = "not_found"
	codeInternal     = "internal"
)

// Websocket close codes beyond RFC 6455's.
const (
	closeBadRequests  = 4000
	closeUnauthorized = 4001
	closeBanned       = 4003
	closeSlowConsumer = 4008
	closeFlooding     = 4029
)

// request is any client message; which fields matter depends on Type.
type request struct {
	Type     string `json:"type"`
	ClientID string `json:"client_id"`

	// hello
	Token   string  `json:"token"`
	Since   *uint64 `json:"since"`
	History *int    `json:"history"`

	// send, react, delete
	Text   string `json:"text"`
	Target uint64 `json:"target"`
	Emoji  string `json:"emoji"`

	// moderate, slow_mode, anonymous_read
	Action   string `json:"action"`
	Identity string `json:"identity"`
	Seconds  *int   `json:"seconds"`
	Allow    *bool  `json:"allow"`

	// poll_create, vote, poll_close
	Question  string   `json:"question"`
	Options   []string `json:"options"`
	DurationS int      `json:"duration_s"`
	Poll      string   `json:"poll"`
	Option    *int     `json:"option"`
}

// requestError is a request refused with an error message: Code is one of
// the protocol's error codes.
type requestError struct {
	Code     string
	Message  string
	ClientID string
	// RetryAfterMS is set for rate_limited and slow_mode.
	RetryAfterMS int64
	// flooding closes the connection with 4029 after the error.
	flooding bool
}

func (e *requestError) Error() string { return e.Code + ": " + e.Message }

func refuse(code, format string, args ...any) *requestError {
	return &requestError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// decode parses one client frame and checks every field its type needs;
// text longer than maxText runes is too_long. It never panics, whatever
// data holds.
func decode(data []byte, maxText int) (*request, *requestError) {
	var r request
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, refuse(codeBadRequest, "invalid JSON: %v", err)
	}
	err := r.check(maxText)
	if err != nil {
		err.ClientID = r.ClientID
		if len(err.ClientID) > maxClientID || !utf8.ValidString(err.ClientID) {
			err.ClientID = ""
		}
		return nil, err
	}
	return &r, nil
}

// check validates the fields r.Type needs.
func (r *request) check(maxText int) *requestError {
	if len(r.ClientID) > maxClientID {
		return refuse(codeTooLong, "client_id over %d bytes", maxClientID)
	}
	switch r.Type {
	case "":
		return refuse(codeBadRequest, "missing type")
	case requestTypeHello:
		if len(r.Token) > maxToken {
			return refuse(codeBadRequest, "token too long")
		}
		if r.History != nil && *r.History < 0 {
			return refuse(codeBadRequest, "negative history")
		}
	case "send":
		if r.ClientID == "" {
			return refuse(codeBadRequest, "send needs a client_id")
		}
		if r.Text == "" {
			return refuse(codeBadRequest, "send needs text")
		}
		if utf8.RuneCountInString(r.Text) > maxText {
			return refuse(codeTooLong, "text over %d characters", maxText)
		}
	case "react":
		if r.ClientID == "" {
			return refuse(codeBadRequest, "react needs a client_id")
		}
		if r.Target == 0 {
			return refuse(codeBadRequest, "react needs a target")
		}
		if r.Emoji == "" {
			return refuse(codeBadRequest, "react needs an emoji")
		}
		if len(r.Emoji) > maxEmoji {
			return refuse(codeTooLong, "emoji over %d bytes", maxEmoji)
		}
	case "delete":
		if r.Target == 0 {
			return refuse(codeBadRequest, "delete needs a target")
		}
	case "moderate":
		switch SanctionKind(r.Action) {
		case Mute, Unmute, Ban, Unban:
		default:
			return refuse(codeBadRequest, "action must be mute, unmute, ban or unban")
		}
		if r.Identity == "" || len(r.Identity) > maxIdentity {
			return refuse(codeBadRequest, "moderate needs an identity")
		}
		if r.Seconds != nil && (*r.Seconds < 0 || *r.Seconds > maxSanctionSecs) {
			return refuse(codeBadRequest, "seconds out of range")
		}
	case "slow_mode":
		if r.Seconds == nil || *r.Seconds < 0 || *r.Seconds > maxSlowMode {
			return refuse(codeBadRequest, "slow_mode needs seconds from 0 to %d", maxSlowMode)
		}
	case "anonymous_read":
		if r.Allow == nil {
			return refuse(codeBadRequest, "anonymous_read needs allow (true or false)")
		}
	case "poll_create":
		return r.checkPoll()
	case "vote":
		if r.Poll == "" {
			return refuse(codeBadRequest, "vote needs a poll")
		}
		if r.Option == nil {
			return refuse(codeBadRequest, "vote needs an option")
		}
		if *r.Option < 0 {
			return refuse(codeBadOption, "no option %d", *r.Option)
		}
	case "poll_close":
		if r.Poll == "" {
			return refuse(codeBadRequest, "poll_close needs a poll")
		}
	case "ping":
	default:
		return refuse(codeUnknownType, "unknown type %.64q", r.Type)
	}
	return nil
}

func (r *request) checkPoll() *requestError {
	if r.Question == "" {
		return refuse(codeBadRequest, "poll_create needs a question")
	}
	if utf8.RuneCountInString(r.Question) > maxQuestion {
		return refuse(codeTooLong, "question over %d characters", maxQuestion)
	}
	if len(r.Options) < minOptions || len(r.Options) > maxOptions {
		return refuse(codeBadRequest, "a poll has %d to %d options", minOptions, maxOptions)
	}
	for i, o := range r.Options {
		if o == "" {
			return refuse(codeBadRequest, "option %d is empty", i)
		}
		if utf8.RuneCountInString(o) > maxOption {
			return refuse(codeTooLong, "option %d over %d characters", i, maxOption)
		}
	}
	if r.DurationS < 0 || r.DurationS > maxPollDuration {
		return refuse(codeBadRequest, "duration_s from 0 to %d", maxPollDuration)
	}
	return nil
}

// Server → client messages.

type welcomeMsg struct {
	Type        string    `json:"type"`
	Identity    string    `json:"identity"`
	Name        string    `json:"name,omitempty"`
	CanWrite    bool      `json:"can_write"`
	CanModerate bool      `json:"can_moderate"`
	Seq         uint64    `json:"seq"`
	Viewers     int       `json:"viewers"`
	SlowMode    int       `json:"slow_mode"`
	Polls       []Poll    `json:"polls"`
	Limits      limitsMsg `json:"limits"`
}

type limitsMsg struct {
	MaxText int     `json:"max_text"`
	Rate    float64 `json:"rate"`
	Burst   int     `json:"burst"`
}

type eventMsg struct {
	Type  string `json:"type"`
	Event *Event `json:"event"`
}

type syncedMsg struct {
	Type string `json:"type"`
	Seq  uint64 `json:"seq"`
}

type ackMsg struct {
	Type      string `json:"type"`
	ClientID  string `json:"client_id,omitempty"`
	Seq       uint64 `json:"seq,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Poll      string `json:"poll,omitempty"`
}

type errorMsg struct {
	Type         string `json:"type"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	ClientID     string `json:"client_id,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

type tallyMsg struct {
	Type string `json:"type"`
	Poll *Poll  `json:"poll"`
}

type presenceMsg struct {
	Type    string `json:"type"`
	Viewers int    `json:"viewers"`
}

type pongMsg struct {
	Type     string `json:"type"`
	ClientID string `json:"client_id,omitempty"`
	TS       int64  `json:"ts"`
}

// encode marshals a server message. Text stays as sent: no HTML escaping,
// which JSON does not need and which would make frames differ from what
// clients stored.
func encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own message types reach here, and they marshal unless
		// a float is NaN, which NewServer rules out.
		return []byte(`{"type":"error","code":"internal","message":"encode failed"}`)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func errorFrame(e *requestError) []byte {
	return encode(errorMsg{Type: "error", Code: e.Code, Message: e.Message, ClientID: e.ClientID, RetryAfterMS: e.RetryAfterMS})
}
