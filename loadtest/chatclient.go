package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// ChatEvent is the part of a chat log event the load test reads
// (docs/chat-protocol.md).
type ChatEvent struct {
	Seq      uint64 `json:"seq"`
	Kind     string `json:"kind"`
	TS       int64  `json:"ts"`
	From     string `json:"from"`
	ClientID string `json:"client_id"`
	Text     string `json:"text"`
}

// chatFrame is any server → client message.
type chatFrame struct {
	Type     string     `json:"type"`
	Identity string     `json:"identity"`
	CanWrite bool       `json:"can_write"`
	Seq      uint64     `json:"seq"`
	ClientID string     `json:"client_id"`
	Code     string     `json:"code"`
	Message  string     `json:"message"`
	Event    *ChatEvent `json:"event"`
}

// ChatClient is one chat websocket connection.
type ChatClient struct {
	conn *websocket.Conn
	// Identity and CanWrite are what the server's welcome said.
	Identity string
	CanWrite bool
	// Seq is the newest sequence number when the client joined.
	Seq uint64
	wmu sync.Mutex
}

// ChatURL turns a base URL (http://host:8080) and a room into the chat
// websocket URL (ws://host:8080/chat/room); a ws:// or wss:// URL is kept.
func ChatURL(base, room string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("loadtest: chat url: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
		return u.String(), nil
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("loadtest: chat url %q is not http(s) or ws(s)", base)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/chat/" + url.PathEscape(room)
	return u.String(), nil
}

// DialChat connects to a chat websocket, says hello with token (empty for an
// anonymous reader) asking for history events, and waits for the welcome.
func DialChat(ctx context.Context, d *websocket.Dialer, wsURL, token string, history int) (*ChatClient, error) {
	conn, resp, err := d.DialContext(ctx, wsURL, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("loadtest: chat: %s: %s", wsURL, resp.Status)
		}
		return nil, fmt.Errorf("loadtest: chat: %w", err)
	}
	c := &ChatClient{conn: conn}
	hello := map[string]any{"type": "hello", "history": history}
	if token != "" {
		hello["token"] = token
	}
	if err := c.write(hello); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	var f chatFrame
	if err := conn.ReadJSON(&f); err != nil {
		_ = conn.Close()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("loadtest: chat: closed %d %s", ce.Code, ce.Text)
		}
		return nil, fmt.Errorf("loadtest: chat: read welcome: %w", err)
	}
	if f.Type != "welcome" {
		_ = conn.Close()
		return nil, fmt.Errorf("loadtest: chat: got %q (%s %s) instead of welcome", f.Type, f.Code, f.Message)
	}
	_ = conn.SetReadDeadline(time.Time{})
	c.Identity, c.CanWrite, c.Seq = f.Identity, f.CanWrite, f.Seq
	return c, nil
}

func (c *ChatClient) write(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.conn.WriteJSON(v); err != nil {
		return fmt.Errorf("loadtest: chat: write: %w", err)
	}
	return nil
}

// Send sends a chat message.
func (c *ChatClient) Send(clientID, text string) error {
	return c.write(map[string]string{"type": "send", "client_id": clientID, "text": text})
}

// Read returns the next frame from the server.
func (c *ChatClient) read() (chatFrame, error) {
	var f chatFrame
	_, b, err := c.conn.ReadMessage()
	if err != nil {
		return f, err
	}
	return f, json.Unmarshal(b, &f)
}

// Close closes the connection.
func (c *ChatClient) Close() error {
	c.wmu.Lock()
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	return c.conn.Close()
}
