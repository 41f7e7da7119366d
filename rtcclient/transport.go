package rtcclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
)

// negotiationDebounce gathers changes made together (a camera and a
// microphone, say) into one offer, as PCTransport's 20 ms debounce does.
const negotiationDebounce = 20 * time.Millisecond

// transport is one of the two peer connections with the signalling state
// livekit-client keeps around it in PCTransport: the remote candidates held
// back until a remote description is in place, and, on the publisher, the
// numbered offers made one at a time.
type transport struct {
	target  livekit.SignalTarget
	pc      *webrtc.PeerConnection
	log     *slog.Logger
	send    func(*livekit.SignalRequest) error
	changed notifier // on every description applied and connection state change

	// sdpMu serialises changes of description: making and setting an offer,
	// applying the answer, answering a remote offer.
	sdpMu sync.Mutex

	mu            sync.Mutex
	remoteSet     bool
	restartingICE bool
	pending       []webrtc.ICECandidateInit // remote, held until applicable
	describing    bool                      // a local description is being set and sent
	held          []webrtc.ICECandidateInit // local, gathered meanwhile
	latestOffer   uint32                    // publisher: id of the newest offer made
	answered      uint32                    // publisher: id of the newest offer whose answer is applied
	failed        uint32                    // publisher: id of the newest offer that could not be made or applied
	failErr       error
	needed        bool   // publisher: negotiation was asked for at least once
	offers        int    // subscriber: remote offers answered
	lastOfferID   uint32 // subscriber: id of the newest remote offer
	ufrag         string // subscriber: ICE username fragment of the newest remote offer

	kick    chan struct{} // publisher: an offer is wanted
	restart chan struct{} // publisher: an ICE-restart offer is wanted
}

func newTransport(target livekit.SignalTarget, pc *webrtc.PeerConnection, log *slog.Logger, send func(*livekit.SignalRequest) error) *transport {
	t := &transport{
		target:  target,
		pc:      pc,
		log:     log.With("pc", targetName(target)),
		send:    send,
		kick:    make(chan struct{}, 1),
		restart: make(chan struct{}, 1),
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		t.mu.Lock()
		if t.describing {
			t.held = append(t.held, c.ToJSON())
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
		t.sendCandidate(c.ToJSON())
	})
	return t
}

func (t *transport) sendCandidate(c webrtc.ICECandidateInit) {
	b, err := json.Marshal(c)
	if err != nil {
		return
	}
	err = t.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Trickle{
		Trickle: &livekit.TrickleRequest{CandidateInit: string(b), Target: t.target},
	}})
	if err != nil {
		t.log.Debug("rtcclient: local candidate not sent", "err", err)
	}
}

// describe runs set, which sets a local description and sends it, holding
// back the candidates gathered meanwhile so that none reaches the server
// before the description that introduces its ICE credentials.
func (t *transport) describe(set func() error) error {
	t.mu.Lock()
	t.describing = true
	t.mu.Unlock()
	err := set()
	t.mu.Lock()
	t.describing = false
	held := t.held
	t.held = nil
	t.mu.Unlock()
	for _, c := range held {
		t.sendCandidate(c)
	}
	return err
}

func targetName(t livekit.SignalTarget) string {
	if t == livekit.SignalTarget_SUBSCRIBER {
		return "subscriber"
	}
	return "publisher"
}

// addCandidate applies a remote candidate, or keeps it until the remote
// description it belongs to is set (and, on the publisher, until the answer
// to an ICE restart is in).
func (t *transport) addCandidate(c webrtc.ICECandidateInit) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.remoteSet || t.restartingICE {
		t.pending = append(t.pending, c)
		return
	}
	if err := t.pc.AddICECandidate(c); err != nil {
		t.log.Warn("rtcclient: remote candidate", "err", err)
	}
}

func (t *transport) flushCandidatesLocked() {
	for _, c := range t.pending {
		if err := t.pc.AddICECandidate(c); err != nil {
			t.log.Warn("rtcclient: remote candidate", "err", err)
		}
	}
	t.pending = nil
}

// answerOffer applies a server offer to the subscriber connection and sends
// the answer, echoing the offer's id as livekit-client does.
func (t *transport) answerOffer(sdp string, id uint32) error {
	t.sdpMu.Lock()
	defer t.sdpMu.Unlock()
	if err := t.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return fmt.Errorf("rtcclient: subscriber offer %d: %w", id, err)
	}
	t.mu.Lock()
	t.remoteSet = true
	t.flushCandidatesLocked()
	t.mu.Unlock()
	answer, err := t.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("rtcclient: subscriber answer %d: %w", id, err)
	}
	var sendErr error
	err = t.describe(func() error {
		if err := t.pc.SetLocalDescription(answer); err != nil {
			return fmt.Errorf("rtcclient: subscriber answer %d: %w", id, err)
		}
		sendErr = t.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Answer{
			Answer: &livekit.SessionDescription{Type: "answer", Sdp: answer.SDP, Id: id},
		}})
		return nil
	})
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.offers++
	t.lastOfferID = id
	t.ufrag = iceUfrag(sdp)
	t.mu.Unlock()
	t.changed.notify()
	return sendErr
}

// iceUfrag returns the first ICE username fragment in an SDP.
func iceUfrag(sdp string) string {
	const attr = "a=ice-ufrag:"
	i := strings.Index(sdp, attr)
	if i < 0 {
		return ""
	}
	rest := sdp[i+len(attr):]
	if j := strings.IndexAny(rest, "\r\n"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// remoteUfrag returns the ICE username fragment of the newest remote offer.
func (t *transport) remoteUfrag() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ufrag
}

// offersAnswered returns how many server offers the subscriber answered.
func (t *transport) offersAnswered() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.offers
}

// negotiate asks for a publisher offer and waits until an offer made after
// the call has been answered.
func (t *transport) negotiate(ctx context.Context) error {
	t.mu.Lock()
	checkpoint := t.latestOffer
	t.needed = true
	t.mu.Unlock()
	t.requestOffer()
	return t.waitAnswered(ctx, checkpoint)
}

// requestOffer asks the negotiator for an offer without waiting for it.
func (t *transport) requestOffer() {
	t.mu.Lock()
	t.needed = true
	t.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// restartICE asks for an ICE-restart offer and returns the id below which
// answers do not count, for waitAnswered.
func (t *transport) restartICE() uint32 {
	t.mu.Lock()
	checkpoint := t.latestOffer
	t.mu.Unlock()
	select {
	case t.restart <- struct{}{}:
	default:
	}
	return checkpoint
}

// wasNegotiated reports whether the publisher was ever asked to negotiate.
func (t *transport) wasNegotiated() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.needed
}

// waitAnswered waits until the answer to an offer newer than after is
// applied, or an offer newer than after failed.
func (t *transport) waitAnswered(ctx context.Context, after uint32) error {
	var failed error
	err := t.changed.waitFor(ctx, func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.answered > after {
			return true
		}
		if t.failed > after {
			failed = t.failErr
			return true
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("rtcclient: publisher offer after #%d not answered: %w", after, err)
	}
	return failed
}

// runNegotiator makes the publisher's offers, one outstanding at a time:
// a request that comes while an offer waits for its answer is served by a
// new offer once the answer is in. An ICE restart does not wait: it rolls
// the outstanding offer back, as PCTransport.createAndSendOffer does.
func (t *transport) runNegotiator(ctx context.Context) {
	for {
		restart := false
		select {
		case <-ctx.Done():
			return
		case <-t.kick:
		case <-t.restart:
			restart = true
		}
		if !restart {
			timer := time.NewTimer(negotiationDebounce)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			case <-t.restart:
				timer.Stop()
				restart = true
			}
		}
		for !restart {
			ch := t.changed.changed()
			if t.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-ch:
			case <-t.restart:
				restart = true
			}
		}
		// The offer about to be made covers every request so far.
		select {
		case <-t.kick:
		default:
		}
		t.offer(restart)
	}
}

// offer makes, sets and sends one publisher offer.
func (t *transport) offer(restart bool) {
	t.sdpMu.Lock()
	defer t.sdpMu.Unlock()
	if t.pc.ConnectionState() == webrtc.PeerConnectionStateClosed {
		return
	}
	t.mu.Lock()
	t.latestOffer++
	id := t.latestOffer
	if restart {
		t.restartingICE = true
	}
	t.mu.Unlock()
	if restart && t.pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		cur := t.pc.CurrentRemoteDescription()
		if cur == nil {
			// The first offer's answer never came: nothing to roll back to
			// and nothing connected to restart; offer it again.
			t.resend(id)
			return
		}
		if err := t.pc.SetRemoteDescription(*cur); err != nil {
			t.fail(id, fmt.Errorf("rtcclient: roll back outstanding offer for ICE restart: %w", err))
			return
		}
	}
	// CreateOffer is inside describe too: an ICE restart starts gathering
	// with the new credentials right there.
	err := t.describe(func() error {
		offer, err := t.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
		if err != nil {
			return err
		}
		if err := t.pc.SetLocalDescription(offer); err != nil {
			return err
		}
		// A send that fails leaves the offer outstanding: the connection
		// is being resumed, and the ICE-restart offer that follows
		// replaces it.
		if err := t.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Offer{
			Offer: &livekit.SessionDescription{Type: "offer", Sdp: offer.SDP, Id: id},
		}}); err != nil {
			t.log.Warn("rtcclient: publisher offer not sent", "offer", id, "err", err)
		}
		return nil
	})
	if err != nil {
		t.fail(id, fmt.Errorf("rtcclient: publisher offer %d: %w", id, err))
		return
	}
	t.changed.notify()
}

// resend sends the outstanding offer again under id.
func (t *transport) resend(id uint32) {
	pending := t.pc.PendingLocalDescription()
	if pending == nil {
		t.fail(id, errors.New("rtcclient: no outstanding offer to send again"))
		return
	}
	if err := t.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Offer{
		Offer: &livekit.SessionDescription{Type: "offer", Sdp: pending.SDP, Id: id},
	}}); err != nil {
		t.log.Warn("rtcclient: publisher offer not sent", "offer", id, "err", err)
	}
	t.changed.notify()
}

func (t *transport) fail(id uint32, err error) {
	t.log.Warn("rtcclient: negotiation failed", "offer", id, "err", err)
	t.mu.Lock()
	t.failed, t.failErr = id, err
	t.mu.Unlock()
	t.changed.notify()
}

// setAnswer applies the server's answer to the newest publisher offer.
// Answers to older offers and repeats are ignored, as in PCTransport.
func (t *transport) setAnswer(sdp string, id uint32) error {
	t.sdpMu.Lock()
	defer t.sdpMu.Unlock()
	t.mu.Lock()
	latest := t.latestOffer
	t.mu.Unlock()
	if id != 0 && id != latest {
		t.log.Debug("rtcclient: answer to an old offer ignored", "answer", id, "latest", latest)
		return nil
	}
	if t.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		t.log.Debug("rtcclient: answer without an outstanding offer ignored", "answer", id)
		return nil
	}
	if err := t.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		err = fmt.Errorf("rtcclient: publisher answer %d: %w", id, err)
		t.fail(latest, err)
		return err
	}
	t.mu.Lock()
	t.answered = latest
	t.remoteSet = true
	t.restartingICE = false
	t.flushCandidatesLocked()
	t.mu.Unlock()
	t.changed.notify()
	return nil
}

// connected reports whether the peer connection is connected.
func (t *transport) connected() bool {
	return t.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
}
