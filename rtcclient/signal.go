package rtcclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// protoJSON decodes the JSON form of responses, ignoring fields this version
// of the protocol package does not know.
var protoJSON = protojson.UnmarshalOptions{DiscardUnknown: true}

// Protocol is the signal protocol version the client announces by default,
// the one Starling's /rtc speaks.
const Protocol = 16

// SDKVersion is the version the client reports with sdk=go.
const SDKVersion = "0.1.0"

// writeTimeout bounds one websocket write, so a stalled server cannot hold
// the write lock forever.
const writeTimeout = 10 * time.Second

// HandshakeError is a websocket upgrade the server refused with an HTTP
// response, such as 401 for a bad token.
type HandshakeError struct {
	Status int
	Body   string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("rtcclient: websocket upgrade refused: %d %s: %s",
		e.Status, http.StatusText(e.Status), strings.TrimSpace(e.Body))
}

// LeaveError reports that the server sent a leave: in place of the join or
// reconnect response, in answer to a request, or during the session.
type LeaveError struct {
	Leave *livekit.LeaveRequest
}

func (e *LeaveError) Error() string {
	return fmt.Sprintf("rtcclient: server sent leave (reason %s, action %s)",
		e.Leave.GetReason(), e.Leave.GetAction())
}

// RequestError is a request_response with a reason other than OK.
type RequestError struct {
	Response *livekit.RequestResponse
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("rtcclient: request %d refused: %s %s",
		e.Response.GetRequestId(), e.Response.GetReason(), e.Response.GetMessage())
}

// RTCURL turns a server URL (http://host:port, https://…, or already ws:// or
// wss://) into the v0 signal endpoint ws(s)://host:port/…/rtc with query.
func RTCURL(base string, query url.Values) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("rtcclient: url: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("rtcclient: url %q is not http(s) or ws(s)", base)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/rtc"
	u.RawPath = ""
	u.RawQuery = query.Encode()
	return u.String(), nil
}

// connectParams are what the client says about itself when it dials.
type connectParams struct {
	token          string
	autoSubscribe  bool
	adaptiveStream bool
	protocol       int
	// reconnect asks to resume the session of participant sid.
	reconnect       bool
	sid             string
	reconnectReason livekit.ReconnectReason
}

// query builds the /rtc query as livekit-client's createConnectionParams
// does for the v0 path.
func (p connectParams) query() url.Values {
	q := url.Values{}
	q.Set("access_token", p.token)
	if p.reconnect {
		q.Set("reconnect", "1")
		if p.sid != "" {
			q.Set("sid", p.sid)
		}
	}
	q.Set("auto_subscribe", boolParam(p.autoSubscribe))
	q.Set("sdk", "go")
	q.Set("version", SDKVersion)
	q.Set("protocol", strconv.Itoa(p.protocol))
	q.Set("adaptive_stream", boolParam(p.adaptiveStream))
	if p.reconnectReason != livekit.ReconnectReason_RR_UNKNOWN {
		q.Set("reconnect_reason", strconv.Itoa(int(p.reconnectReason)))
	}
	return q
}

func boolParam(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// DialRaw opens a signal websocket with nothing more than access_token (when
// token is not empty) and query, for tests that send the server bad input.
// On a refused upgrade it returns the HTTP response and a *HandshakeError.
func DialRaw(ctx context.Context, base, token string, query url.Values) (*websocket.Conn, *http.Response, error) {
	q := url.Values{}
	if token != "" {
		q.Set("access_token", token)
	}
	for k, v := range query {
		q[k] = v
	}
	u, err := RTCURL(base, q)
	if err != nil {
		return nil, nil, err
	}
	return dial(ctx, nil, u)
}

func dial(ctx context.Context, d *websocket.Dialer, u string) (*websocket.Conn, *http.Response, error) {
	if d == nil {
		d = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	}
	conn, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return nil, resp, &HandshakeError{Status: resp.StatusCode, Body: string(body)}
		}
		return nil, resp, fmt.Errorf("rtcclient: dial: %w", err)
	}
	return conn, resp, nil
}

// signalConn is one signal websocket: binary protobuf frames, one writer at a
// time, read by the client's read loop.
type signalConn struct {
	conn *websocket.Conn
	wmu  sync.Mutex
	// recv gets a token for every message read, for the ping timeout.
	recv      chan struct{}
	done      chan struct{} // closed by close
	closeOnce sync.Once

	causeMu  sync.Mutex
	causeErr error // why the client dropped the connection, if it did
}

func newSignalConn(conn *websocket.Conn) *signalConn {
	return &signalConn{conn: conn, recv: make(chan struct{}, 1), done: make(chan struct{})}
}

func (s *signalConn) write(req *livekit.SignalRequest) error {
	b, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("rtcclient: marshal request: %w", err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := s.conn.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return fmt.Errorf("rtcclient: write: %w", err)
	}
	return nil
}

// read returns the next response. Text frames are JSON, as a server may send
// when the client asked for JSON; this client never does, but accepts them.
func (s *signalConn) read() (*livekit.SignalResponse, error) {
	kind, b, err := s.conn.ReadMessage()
	if err != nil {
		return nil, err
	}
	select {
	case s.recv <- struct{}{}:
	default:
	}
	res := &livekit.SignalResponse{}
	if kind == websocket.TextMessage {
		err = protoJSON.Unmarshal(b, res)
	} else {
		err = proto.Unmarshal(b, res)
	}
	if err != nil {
		return nil, fmt.Errorf("rtcclient: decode response: %w", err)
	}
	return res, nil
}

// readFirst reads the join or reconnect response, skipping anything else
// while resuming (as livekit-client does) and failing on anything else when
// joining. A leave is a *LeaveError either way.
func (s *signalConn) readFirst(ctx context.Context, resuming bool) (*livekit.SignalResponse, error) {
	deadline := time.Now().Add(15 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = s.conn.SetReadDeadline(deadline)
	defer func() { _ = s.conn.SetReadDeadline(time.Time{}) }()
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		res, err := s.read()
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("rtcclient: waiting for the first response: %w", err)
		}
		switch m := res.Message.(type) {
		case *livekit.SignalResponse_Leave:
			return nil, &LeaveError{Leave: m.Leave}
		case *livekit.SignalResponse_Join:
			if !resuming {
				return res, nil
			}
		case *livekit.SignalResponse_Reconnect:
			if resuming {
				return res, nil
			}
		}
		if !resuming {
			text := prototext.Format(res)
			if len(text) > 300 {
				text = text[:300] + "…"
			}
			return nil, fmt.Errorf("rtcclient: first response is %s, not join: %s", messageName(res), text)
		}
	}
}

// close closes the connection without a close frame, as a lost network
// would; it is safe to call more than once.
func (s *signalConn) close() {
	s.closeOnce.Do(func() {
		close(s.done)
		_ = s.conn.Close()
	})
}

// fail closes the connection, recording why for the read loop.
func (s *signalConn) fail(err error) {
	s.causeMu.Lock()
	if s.causeErr == nil {
		s.causeErr = err
	}
	s.causeMu.Unlock()
	s.close()
}

func (s *signalConn) cause() error {
	s.causeMu.Lock()
	defer s.causeMu.Unlock()
	return s.causeErr
}

// closeGracefully sends a close frame, gives the server a moment to answer
// it, and closes.
func (s *signalConn) closeGracefully() {
	s.wmu.Lock()
	_ = s.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(250*time.Millisecond))
	s.wmu.Unlock()
	s.close()
}

// messageName names a response's message for errors and logs: "join",
// "offer", ….
func messageName(res *livekit.SignalResponse) string {
	if res.Message == nil {
		return "empty message"
	}
	name := fmt.Sprintf("%T", res.Message)
	name = strings.TrimPrefix(name, "*livekit.SignalResponse_")
	return strings.ToLower(name[:1]) + name[1:]
}
