package chat

import (
	"context"
	"errors"
	"time"

	"github.com/gorilla/websocket"
)

// errStale is the store failing to return events it has logged.
var errStale = errors.New("the store did not return logged events")

// storeError is a store failure while streaming a client's events, as
// opposed to a failed write.
type storeError struct{ err error }

func (e *storeError) Error() string { return "chat: stream from store: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// backlogPage is how many events one Range of a backlog reads.
const backlogPage = 500

// writeLoop is the client's writer: the welcome, the backlog and synced,
// then queued messages and pings, then the close handshake.
func (c *client) writeLoop() {
	defer close(c.writerDone)
	defer c.writeClose()
	var j joined
	select {
	case <-c.done:
		return
	case j = <-c.start:
	}
	last, err := c.writeJoin(j)
	if err != nil {
		c.writeFailed(err)
		return
	}
	ping := time.NewTicker(pingPeriod)
	defer ping.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				c.writeFailed(err)
				return
			}
		case f := <-c.q:
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			err := c.write(f, &last)
			// Write what else is queued under the same deadline.
			for n := len(c.q); n > 0 && err == nil; n-- {
				err = c.write(<-c.q, &last)
			}
			if err != nil {
				c.writeFailed(err)
				return
			}
		}
	}
}

// writeJoin writes the welcome, the history or missed events, and synced,
// and returns the seq the client now has. Live events from the hub follow
// j.seq with no gap; the backlog ends there.
func (c *client) writeJoin(j joined) (uint64, error) {
	s := c.srv
	ctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
	defer cancel()
	from, upto := j.seq-min(j.seq, uint64(j.history)), j.seq
	if j.resume {
		from = j.since
		if from > upto {
			// The client saw more than this hub has broadcast (it comes
			// from a node that is ahead): it starts where it is, unless it
			// claims more than the log holds.
			stored, err := s.opts.Store.LastSeq(ctx, c.room)
			if err != nil {
				return 0, &storeError{err}
			}
			upto = min(from, max(stored, upto))
			from = upto
		}
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
	err := c.writeData(encode(welcomeMsg{
		Type: "welcome", Identity: c.identity, Name: c.name,
		CanWrite: c.canWrite && !c.anonymous, CanModerate: c.canModerate,
		Seq: upto, Viewers: j.viewers, SlowMode: j.slow,
		Polls:  j.polls,
		Limits: limitsMsg{MaxText: s.opts.MaxText, Rate: s.opts.Rate, Burst: s.opts.Burst},
	}))
	if err != nil {
		return 0, err
	}
	if err := c.writeRange(from, upto); err != nil {
		return 0, err
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
	return upto, c.writeData(encode(syncedMsg{Type: "synced", Seq: upto}))
}

// writeRange writes the logged events after from up to upto, paged.
func (c *client) writeRange(from, upto uint64) error {
	for from < upto {
		select {
		case <-c.done:
			return nil // the close ends the writer anyway
		default:
		}
		ctx, cancel := context.WithTimeout(c.srv.ctx, storeTimeout)
		events, err := c.srv.opts.Store.Range(ctx, c.room, from, int(min(upto-from, backlogPage)))
		cancel()
		if err != nil {
			return &storeError{err}
		}
		if len(events) == 0 {
			return &storeError{errStale}
		}
		_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
		for i := range events {
			e := &events[i]
			if e.Seq <= from || e.Seq > upto {
				return &storeError{errStale}
			}
			if err := c.writeData(encode(eventMsg{Type: "event", Event: e})); err != nil {
				return err
			}
			from = e.Seq
		}
	}
	return nil
}

// write writes a queued frame; an event already sent is skipped, and one
// that is ahead of the last sent has the missing ones fetched first.
func (c *client) write(f frame, last *uint64) error {
	if f.seq != 0 {
		if f.seq <= *last {
			return nil
		}
		if f.seq > *last+1 {
			if err := c.writeRange(*last, f.seq-1); err != nil {
				return err
			}
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
		}
		*last = f.seq
	}
	if f.pm != nil {
		if err := c.conn.WritePreparedMessage(f.pm); err != nil {
			return err
		}
		c.srv.stats.MessagesOut.Add(1)
		return nil
	}
	return c.writeData(f.data)
}

func (c *client) writeData(data []byte) error {
	if err := c.conn.WriteMessage(websocket.TextMessage, data); err != nil {
		return err
	}
	c.srv.stats.MessagesOut.Add(1)
	return nil
}

// writeFailed closes the client after a failed write or store read.
func (c *client) writeFailed(err error) {
	var (
		se *storeError
		ne interface{ Timeout() bool }
	)
	switch {
	case errors.As(err, &se):
		c.log.Warn("chat client stream failed", "err", err)
		c.close(websocket.CloseInternalServerErr, "chat unavailable", errorFrame(refuse(codeInternal, "the chat store is unavailable; reconnect with since")))
	case errors.As(err, &ne) && ne.Timeout():
		c.dropSlow()
	default:
		c.close(0, "", nil)
	}
}

// writeClose writes the client's final message and close frame, if it has
// any, and gives the peer closeGrace to answer before the reader gives up.
func (c *client) writeClose() {
	c.mu.Lock()
	code, reason, final := c.code, c.reason, c.final
	c.mu.Unlock()
	if code != 0 {
		deadline := time.Now().Add(closeGrace)
		if final != nil {
			_ = c.conn.SetWriteDeadline(deadline)
			_ = c.writeData(final)
		}
		_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(closeGrace))
}
