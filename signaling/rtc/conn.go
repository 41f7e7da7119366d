package rtc

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Websocket close codes the server uses.
const (
	closeNormal      = websocket.CloseNormalClosure
	closeBadMessage  = websocket.CloseInvalidFramePayloadData // undecodable frame
	closeTooBig      = websocket.CloseMessageTooBig
	closePolicy      = websocket.ClosePolicyViolation // over the message rate
	closeSlow        = 4008                           // the client does not read fast enough
	writeWait        = 10 * time.Second
	outboundMessages = 512
)

// signalConn is one websocket of a session. Its writer goroutine sends what
// send queues, in order; a client that does not keep up is disconnected
// rather than let the queue grow.
type signalConn struct {
	ws   *websocket.Conn
	json atomic.Bool // the client speaks protojson in text frames

	out       chan []byte
	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	code      int
	reason    string
}

func newSignalConn(ws *websocket.Conn) *signalConn {
	c := &signalConn{ws: ws, out: make(chan []byte, outboundMessages), done: make(chan struct{})}
	go c.write()
	return c
}

func (c *signalConn) write() {
	defer c.ws.Close()
	mt := websocket.BinaryMessage
	for {
		select {
		case b := <-c.out:
			if c.json.Load() {
				mt = websocket.TextMessage
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(mt, b); err != nil {
				c.close(closeNormal, "write failed")
				return
			}
		case <-c.done:
			// What was queued before the close (a leave) goes first.
			for drained := false; !drained; {
				select {
				case b := <-c.out:
					if c.json.Load() {
						mt = websocket.TextMessage
					}
					_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
					if c.ws.WriteMessage(mt, b) != nil {
						return
					}
				default:
					drained = true
				}
			}
			c.mu.Lock()
			code, reason := c.code, c.reason
			c.mu.Unlock()
			if len(reason) > 120 {
				reason = reason[:120]
			}
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
			return
		}
	}
}

// send queues msg; false when the connection is closed or has fallen behind
// (and is then closed).
func (c *signalConn) send(msg *livekit.SignalResponse) bool {
	var b []byte
	var err error
	if c.json.Load() {
		b, err = protojson.Marshal(msg)
	} else {
		b, err = proto.Marshal(msg)
	}
	if err != nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.out <- b:
		return true
	default:
		c.close(closeSlow, "signal messages not read in time")
		return false
	}
}

// close ends the connection with a close frame carrying code and reason.
func (c *signalConn) close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.code, c.reason = code, reason
		c.mu.Unlock()
		close(c.done)
	})
}

// decode reads one client frame: protobuf in binary frames, protojson in
// text frames (as LiveKit's server accepts both).
func (c *signalConn) decode(mt int, b []byte) (*livekit.SignalRequest, error) {
	req := &livekit.SignalRequest{}
	if mt == websocket.TextMessage {
		c.json.Store(true)
		return req, protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, req)
	}
	return req, proto.Unmarshal(b, req)
}

// rateLimit is a token bucket of signal messages.
type rateLimit struct {
	rate, burst, tokens float64
	last                time.Time
}

func (l *rateLimit) allow(now time.Time) bool {
	if l.last.IsZero() {
		l.tokens, l.last = l.burst, now
	}
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
