package chat

import (
	"context"
	"time"
)

// Presence: each node's hub records how many clients it has in the room,
// and the room-wide sum goes to the clients when it changes.

const (
	// presenceEvery is how often a hub reports its count. Reporting also
	// reads the room-wide sum, so it happens even when the count is
	// unchanged: other nodes' changes show within presenceEvery.
	presenceEvery = time.Second
	presenceTTL   = 10 * time.Second // a node's record outlives its last report this long
)

// reportPresence reports the hub's client count until the hub stops, and
// passes room-wide totals that changed to the hub.
func (h *hub) reportPresence() {
	t := time.NewTicker(presenceEvery)
	defer t.Stop()
	total := -1
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
			n := h.visible.Load()
			ctx, cancel := context.WithTimeout(h.ctx, storeTimeout)
			sum, err := h.srv.opts.Store.Presence(ctx, h.room, h.srv.opts.Node, int(n), presenceTTL)
			cancel()
			if err != nil {
				h.log.Debug("chat presence not recorded", "err", err)
				continue
			}
			h.reported.Store(n)
			h.total.Store(int64(sum))
			if sum != total {
				total = sum
				select { // only this goroutine sends: after the drain there is room
				case <-h.viewers:
				default:
				}
				h.viewers <- sum
			}
		}
	}
}

// withdrawPresence records that this node has left the room.
func (h *hub) withdrawPresence() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := h.srv.opts.Store.Presence(ctx, h.room, h.srv.opts.Node, 0, presenceTTL); err != nil {
		h.log.Debug("chat presence not withdrawn", "err", err)
	}
}

// broadcastPresence tells the clients a changed room-wide count.
func (h *hub) broadcastPresence(viewers int) {
	if viewers == h.lastViewers {
		return
	}
	h.lastViewers = viewers
	h.broadcast(0, encode(presenceMsg{Type: "presence", Viewers: viewers}))
}
