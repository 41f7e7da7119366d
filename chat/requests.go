package chat

import (
	"context"
	"errors"
	"time"
)

// maxBadInARow consecutive bad frames close the connection with 4000.
const maxBadInARow = 10

// serve answers one request frame. It runs on the client's reader, so one
// client's requests are answered in order; store calls block only it.
func (c *client) serve(data []byte) {
	r, rerr := decode(data, c.srv.opts.MaxText)
	if rerr != nil {
		if rerr.Code == codeBadRequest || rerr.Code == codeUnknownType {
			c.badFrame(rerr)
		} else {
			c.refused(rerr)
		}
		return
	}
	c.badInARow = 0
	if r.Type == "ping" {
		c.send(encode(pongMsg{Type: "pong", ClientID: r.ClientID, TS: time.Now().UnixMilli()}))
		return
	}
	ack, rerr := c.handle(r)
	if rerr != nil {
		rerr.ClientID = r.ClientID
		c.refused(rerr)
		return
	}
	c.srv.stats.MessagesIn.Add(1)
	ack.Type, ack.ClientID = "ack", r.ClientID
	c.send(encode(ack))
}

// badFrame answers a frame that is not a valid request.
func (c *client) badFrame(rerr *requestError) {
	c.srv.stats.BadFrames.Add(1)
	c.badInARow++
	if c.badInARow >= maxBadInARow {
		c.log.Debug("chat client sent too many bad requests")
		c.close(closeBadRequests, "too many bad requests", errorFrame(rerr))
		return
	}
	c.send(errorFrame(rerr))
}

// refused answers a request the client may not make now.
func (c *client) refused(rerr *requestError) {
	c.srv.stats.Rejected.Add(1)
	if rerr.flooding {
		c.log.Info("chat client flooding")
		c.close(closeFlooding, "flooding", errorFrame(rerr))
		return
	}
	c.send(errorFrame(rerr))
}

// handle carries out a decoded request.
func (c *client) handle(r *request) (*ackMsg, *requestError) {
	ctx, cancel := context.WithTimeout(c.srv.ctx, storeTimeout)
	defer cancel()
	now := time.Now()
	switch r.Type {
	case "send":
		return c.sendMessage(ctx, r, now)
	case "react":
		return c.react(ctx, r, now)
	case "delete":
		return c.deleteMessage(ctx, r)
	case "moderate":
		return c.moderate(ctx, r, now)
	case "slow_mode":
		return c.setSlowMode(ctx, r)
	case "anonymous_read":
		if rerr := c.mayModerate(); rerr != nil {
			return nil, rerr
		}
		return c.logSanction(ctx, &Sanction{Kind: AnonymousRead, Allow: r.Allow, By: c.identity})
	case "poll_create":
		return c.createPoll(ctx, r, now)
	case "vote":
		return c.vote(ctx, r, now)
	case "poll_close":
		return c.closePoll(ctx, r)
	default: // hello again
		return nil, refuse(codeBadRequest, "hello was already received")
	}
}

func (c *client) sendMessage(ctx context.Context, r *request, now time.Time) (*ackMsg, *requestError) {
	if rerr := c.mayWrite(now); rerr != nil {
		return nil, rerr
	}
	if !c.canModerate {
		interval := time.Duration(c.hub.sanctions.slowMode()) * time.Second
		if wait := c.hub.limits.get(c.identity, now).slowWait(now, interval); wait > 0 {
			rerr := refuse(codeSlowMode, "slow mode: one message every %v", interval)
			rerr.RetryAfterMS = wait.Milliseconds() + 1
			return nil, rerr
		}
	}
	e, dup, err := c.srv.opts.Store.Append(ctx, c.room, Event{
		Kind: KindMessage, Identity: c.identity, Name: c.name, ClientID: r.ClientID, Text: r.Text,
	})
	if err != nil {
		return nil, c.storeFailed(err)
	}
	if !dup {
		c.hub.limits.get(c.identity, now).sent(now)
	}
	return &ackMsg{Seq: e.Seq, Duplicate: dup}, nil
}

func (c *client) react(ctx context.Context, r *request, now time.Time) (*ackMsg, *requestError) {
	if rerr := c.mayWrite(now); rerr != nil {
		return nil, rerr
	}
	if rerr := c.checkTarget(ctx, r.Target, KindMessage); rerr != nil {
		return nil, rerr
	}
	e, dup, err := c.srv.opts.Store.Append(ctx, c.room, Event{
		Kind: KindReaction, Identity: c.identity, Name: c.name, ClientID: r.ClientID, Target: r.Target, Text: r.Emoji,
	})
	if err != nil {
		return nil, c.storeFailed(err)
	}
	return &ackMsg{Seq: e.Seq, Duplicate: dup}, nil
}

func (c *client) deleteMessage(ctx context.Context, r *request) (*ackMsg, *requestError) {
	if rerr := c.mayModerate(); rerr != nil {
		return nil, rerr
	}
	if rerr := c.checkTarget(ctx, r.Target, KindMessage, KindReaction); rerr != nil {
		return nil, rerr
	}
	e, _, err := c.srv.opts.Store.Append(ctx, c.room, Event{
		Kind: KindDelete, Identity: c.identity, Name: c.name, Target: r.Target,
	})
	if err != nil {
		return nil, c.storeFailed(err)
	}
	return &ackMsg{Seq: e.Seq}, nil
}

func (c *client) moderate(ctx context.Context, r *request, now time.Time) (*ackMsg, *requestError) {
	if rerr := c.mayModerate(); rerr != nil {
		return nil, rerr
	}
	sn := &Sanction{Kind: SanctionKind(r.Action), Identity: r.Identity, By: c.identity}
	if secs := r.Seconds; secs != nil && *secs > 0 && (sn.Kind == Mute || sn.Kind == Ban) {
		sn.Until = now.Add(time.Duration(*secs) * time.Second).UnixMilli()
	}
	return c.logSanction(ctx, sn)
}

func (c *client) setSlowMode(ctx context.Context, r *request) (*ackMsg, *requestError) {
	if rerr := c.mayModerate(); rerr != nil {
		return nil, rerr
	}
	return c.logSanction(ctx, &Sanction{Kind: SlowMode, Seconds: *r.Seconds, By: c.identity})
}

func (c *client) logSanction(ctx context.Context, sn *Sanction) (*ackMsg, *requestError) {
	e, _, err := c.srv.opts.Store.Append(ctx, c.room, Event{
		Kind: KindModeration, Identity: c.identity, Name: c.name, Sanction: sn,
	})
	if err != nil {
		return nil, c.storeFailed(err)
	}
	c.log.Info("chat moderation", "by", c.identity, "action", sn.Kind, "target", sn.Identity, "seconds", sn.Seconds)
	return &ackMsg{Seq: e.Seq}, nil
}

func (c *client) createPoll(ctx context.Context, r *request, now time.Time) (*ackMsg, *requestError) {
	if rerr := c.mayModerate(); rerr != nil {
		return nil, rerr
	}
	p := Poll{Question: r.Question, Options: r.Options, Creator: c.identity}
	if r.DurationS > 0 {
		p.ClosesAt = now.Add(time.Duration(r.DurationS) * time.Second).UnixMilli()
	}
	p, e, err := c.srv.opts.Store.CreatePoll(ctx, c.room, p)
	if err != nil {
		return nil, c.storeFailed(err)
	}
	return &ackMsg{Seq: e.Seq, Poll: p.ID}, nil
}

func (c *client) vote(ctx context.Context, r *request, now time.Time) (*ackMsg, *requestError) {
	if c.anonymous {
		return nil, refuse(codeUnauthorized, "anonymous viewers cannot vote")
	}
	if rerr := c.takeToken(now); rerr != nil {
		return nil, rerr
	}
	if _, err := c.srv.opts.Store.Vote(ctx, c.room, r.Poll, c.identity, *r.Option, now); err != nil {
		return nil, c.storeFailed(err)
	}
	c.srv.stats.Votes.Add(1)
	return &ackMsg{Poll: r.Poll}, nil
}

func (c *client) closePoll(ctx context.Context, r *request) (*ackMsg, *requestError) {
	if rerr := c.mayModerate(); rerr != nil {
		return nil, rerr
	}
	p, e, err := c.srv.opts.Store.ClosePoll(ctx, c.room, r.Poll, c.identity)
	if err != nil {
		return nil, c.storeFailed(err)
	}
	return &ackMsg{Seq: e.Seq, Poll: p.ID}, nil
}

// mayWrite checks that the client may send a message or reaction now and
// spends a token on it. The token is spent before the mute is checked, so
// that a muted identity that keeps sending is closed as a flooder.
func (c *client) mayWrite(now time.Time) *requestError {
	switch {
	case c.anonymous:
		return refuse(codeUnauthorized, "anonymous viewers cannot write")
	case !c.canWrite:
		return refuse(codeForbidden, "the token does not grant canPublishData")
	}
	if rerr := c.takeToken(now); rerr != nil {
		return rerr
	}
	if c.hub.sanctions.isMuted(c.identity, now) {
		return refuse(codeMuted, "you are muted")
	}
	return nil
}

func (c *client) mayModerate() *requestError {
	switch {
	case c.anonymous:
		return refuse(codeUnauthorized, "anonymous viewers cannot moderate")
	case !c.canModerate:
		return refuse(codeForbidden, "the token does not grant roomAdmin")
	}
	return nil
}

// takeToken spends one of the identity's tokens.
func (c *client) takeToken(now time.Time) *requestError {
	wait, flooding := c.hub.limits.get(c.identity, now).take(now)
	if wait == 0 {
		return nil
	}
	rerr := refuse(codeRateLimited, "more than %g messages/s", c.srv.opts.Rate)
	rerr.RetryAfterMS = wait.Milliseconds() + 1
	rerr.flooding = flooding
	return rerr
}

// checkTarget refuses a target that is not a logged event of one of kinds.
func (c *client) checkTarget(ctx context.Context, target uint64, kinds ...Kind) *requestError {
	events, err := c.srv.opts.Store.Range(ctx, c.room, target-1, 1)
	if err != nil {
		return c.storeFailed(err)
	}
	if len(events) == 0 || events[0].Seq != target || events[0].Deleted {
		return refuse(codeNotFound, "no event %d", target)
	}
	for _, k := range kinds {
		if events[0].Kind == k {
			return nil
		}
	}
	return refuse(codeNotFound, "event %d is a %s", target, events[0].Kind)
}

// storeFailed turns a store error into the error the client is told.
func (c *client) storeFailed(err error) *requestError {
	switch {
	case errors.Is(err, ErrNoPoll):
		return refuse(codeNoPoll, "no such poll")
	case errors.Is(err, ErrPollClosed):
		return refuse(codePollClosed, "the poll is closed")
	case errors.Is(err, ErrBadOption):
		return refuse(codeBadOption, "no such option")
	case errors.Is(err, ErrNotFound):
		return refuse(codeNotFound, "no such event")
	}
	c.log.Warn("chat store failed", "err", err)
	return refuse(codeInternal, "the chat store failed; retry with the same client_id")
}
