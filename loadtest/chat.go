package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ChatConfig describes a chat load test: Clients join one room, Senders of
// them send Rate messages per second between them for Duration, and every
// client measures how long each message took to reach it and whether any
// went missing.
type ChatConfig struct {
	// URL is the chat websocket, e.g. ws://host:8080/chat/room (ChatURL).
	URL string
	// Token mints a client's token for an identity; nil joins anonymously
	// (read only, so nothing is sent).
	Token    func(identity string) (string, error)
	Clients  int
	Senders  int     // clients that send; default all
	Rate     float64 // messages per second, room-wide
	Duration time.Duration
	Ramp     float64 // joins per second
	// ServerPID, when set, is sampled for CPU and memory.
	ServerPID int
	// MaxLoss is a percentage; above it RunChat returns ErrLossExceeded.
	MaxLoss  float64
	Progress io.Writer
	Dialer   *websocket.Dialer
}

// ChatReport is what a chat run measured over its window.
type ChatReport struct {
	Clients   int     `json:"clients"`
	Connected int     `json:"connected"`
	Failed    int     `json:"failed"`
	Dropped   int     `json:"dropped"` // connections the server closed during the run
	Senders   int     `json:"senders"`
	Window    float64 `json:"window_seconds"`
	Elapsed   float64 `json:"elapsed_seconds"`

	Sent       int64   `json:"sent"`    // messages acknowledged by the server
	Refused    int64   `json:"refused"` // sends answered with an error
	Expected   int64   `json:"expected_deliveries"`
	Delivered  int64   `json:"delivered"`
	Lost       int64   `json:"lost"`
	Gaps       int64   `json:"gaps"` // events skipped in a client's sequence
	Duplicates int64   `json:"duplicates"`
	Loss       float64 `json:"loss_percent"`
	PerSecond  float64 `json:"deliveries_per_second"`

	Join    Percentiles `json:"join_ms"`     // dial to welcome
	Ack     Percentiles `json:"ack_ms"`      // send to the sender's ack
	Latency Percentiles `json:"delivery_ms"` // send to each client's receipt

	TesterCores float64      `json:"tester_cores"`
	Server      *ServerUsage `json:"server,omitempty"`
}

// chatter is one client and what it saw.
type chatter struct {
	c         *ChatClient
	next      uint64 // the seq it expects next; owned by its reader
	delivered atomic.Int64
	missing   atomic.Int64
	dups      atomic.Int64
	last      atomic.Uint64
	closed    atomic.Bool
}

type chatRun struct {
	cfg     ChatConfig
	latency histogram
	ack     histogram
	joins   histogram
	sent    atomic.Int64
	refused atomic.Int64
	maxSeq  atomic.Uint64 // highest acknowledged seq
	mu      sync.Mutex
	clients []*chatter
	failed  atomic.Int64
	wg      sync.WaitGroup
}

// RunChat executes a chat load test and returns its report.
func RunChat(ctx context.Context, cfg ChatConfig) (*ChatReport, error) {
	if cfg.URL == "" || cfg.Clients <= 0 {
		return nil, errors.New("loadtest: chat needs a URL and at least one client")
	}
	if cfg.Senders <= 0 || cfg.Senders > cfg.Clients {
		cfg.Senders = cfg.Clients
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 50
	}
	if cfg.Ramp <= 0 {
		cfg.Ramp = 200
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	}
	r := &chatRun{cfg: cfg}
	defer r.close()
	start := time.Now()
	if err := r.joinAll(ctx); err != nil {
		return nil, err
	}
	srv1, self1 := cpuSample{}, sampleSelf()
	if cfg.ServerPID > 0 {
		s, err := sampleProcess(cfg.ServerPID)
		if err != nil {
			return nil, err
		}
		srv1 = s
	}
	w0 := time.Now()
	r.sendFor(ctx, cfg.Duration)
	r.drain(ctx, 10*time.Second)
	rep := r.report(time.Since(w0))
	rep.Elapsed = time.Since(start).Seconds()
	rep.TesterCores = cores(self1, sampleSelf())
	if cfg.ServerPID > 0 {
		if s, err := sampleProcess(cfg.ServerPID); err == nil {
			rep.Server = &ServerUsage{PID: cfg.ServerPID, Cores: cores(srv1, s), RSSBytes: s.rss}
			if rep.Delivered > 0 {
				rep.Server.MicrosPerPacket = float64((s.cpu - srv1.cpu).Microseconds()) / float64(rep.Delivered)
			}
		}
	}
	if cfg.MaxLoss >= 0 && rep.Loss > cfg.MaxLoss {
		return rep, fmt.Errorf("%w: %.3f%% > %.3f%%", ErrLossExceeded, rep.Loss, cfg.MaxLoss)
	}
	return rep, nil
}

// joinAll connects every client at the ramp rate. The first failure ends the
// run (a wrong URL or token fails fast); later ones are counted.
func (r *chatRun) joinAll(ctx context.Context) error {
	tick := time.NewTicker(time.Duration(float64(time.Second) / r.cfg.Ramp))
	defer tick.Stop()
	var jwg sync.WaitGroup
	errs := make(chan error, 1)
	for i := range r.cfg.Clients {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case err := <-errs:
				return err
			case <-tick.C:
			}
		}
		jwg.Add(1)
		go func() {
			defer jwg.Done()
			if err := r.join(ctx, i); err != nil {
				if r.failed.Add(1) == 1 && i == 0 {
					errs <- err
				}
			}
		}()
		if i == 0 {
			// The first join alone: a bad target ends the run at once.
			jwg.Wait()
			select {
			case err := <-errs:
				return err
			default:
			}
		}
		if r.cfg.Progress != nil && (i+1)%200 == 0 {
			fmt.Fprintf(r.cfg.Progress, "joined %d/%d chat clients\n", i+1, r.cfg.Clients)
		}
	}
	jwg.Wait()
	if n := r.failed.Load(); n > 0 && r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "%d chat clients failed to join\n", n)
	}
	return nil
}

func (r *chatRun) join(ctx context.Context, i int) error {
	token := ""
	if r.cfg.Token != nil {
		var err error
		if token, err = r.cfg.Token(fmt.Sprintf("chat-%d", i)); err != nil {
			return err
		}
	}
	jctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	t0 := time.Now()
	c, err := DialChat(jctx, r.cfg.Dialer, r.cfg.URL, token, 0)
	if err != nil {
		return err
	}
	r.joins.add(int64(time.Since(t0)))
	ch := &chatter{c: c, next: c.Seq + 1}
	ch.last.Store(c.Seq)
	r.mu.Lock()
	r.clients = append(r.clients, ch)
	r.mu.Unlock()
	r.wg.Add(1)
	go r.read(ch)
	return nil
}

// read consumes one client's frames until its connection ends.
func (r *chatRun) read(ch *chatter) {
	defer r.wg.Done()
	defer ch.closed.Store(true)
	for {
		f, err := ch.c.read()
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		switch f.Type {
		case "event":
			e := f.Event
			if e == nil {
				continue
			}
			switch {
			case e.Seq < ch.next:
				ch.dups.Add(1)
				continue
			case e.Seq > ch.next:
				ch.missing.Add(int64(e.Seq - ch.next))
			}
			ch.next = e.Seq + 1
			ch.last.Store(e.Seq)
			ch.delivered.Add(1)
			if sent, ok := sentAt(e.Text); ok {
				r.latency.add(now - sent)
			}
		case "ack":
			if sent, ok := sentAt(f.ClientID); ok {
				r.ack.add(now - sent)
			}
			r.sent.Add(1)
			for {
				m := r.maxSeq.Load()
				if f.Seq <= m || r.maxSeq.CompareAndSwap(m, f.Seq) {
					break
				}
			}
		case "error":
			r.refused.Add(1)
		}
	}
}

// sentAt reads the send time a load-test message carries ("lt:NANOS:N").
func sentAt(s string) (int64, bool) {
	rest, ok := strings.CutPrefix(s, "lt:")
	if !ok {
		return 0, false
	}
	ns, _, _ := strings.Cut(rest, ":")
	v, err := strconv.ParseInt(ns, 10, 64)
	return v, err == nil
}

// sendFor sends Rate messages per second, round robin over the senders, and
// prints a progress line each second.
func (r *chatRun) sendFor(ctx context.Context, d time.Duration) {
	r.mu.Lock()
	var senders []*chatter
	for _, ch := range r.clients {
		if ch.c.CanWrite && len(senders) < r.cfg.Senders {
			senders = append(senders, ch)
		}
	}
	r.mu.Unlock()
	if len(senders) == 0 {
		return
	}
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	t0 := time.Now()
	end := t0.Add(d)
	nextProgress := t0.Add(time.Second)
	for n := 0; ; n++ {
		at := t0.Add(time.Duration(n) * interval)
		if at.After(end) {
			return
		}
		if wait := time.Until(at); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		ch := senders[n%len(senders)]
		stamp := strconv.FormatInt(time.Now().UnixNano(), 10) + ":" + strconv.Itoa(n)
		if !ch.closed.Load() {
			_ = ch.c.Send("lt:"+stamp, "lt:"+stamp)
		}
		if r.cfg.Progress != nil && time.Now().After(nextProgress) {
			nextProgress = nextProgress.Add(time.Second)
			rep := r.report(time.Since(t0))
			fmt.Fprintf(r.cfg.Progress, "t=%3.0fs clients %d  sent %d  delivered %.0f/s  gaps %d  latency p50 %.1f p99 %.1f ms\n",
				time.Since(t0).Seconds(), rep.Connected-rep.Dropped, rep.Sent, rep.PerSecond, rep.Gaps, rep.Latency.P50, rep.Latency.P99)
		}
	}
}

// drain waits, up to limit, until every open client has received the last
// acknowledged message, and every message a client received has been
// acknowledged to its sender (a broadcast can overtake its own ack; counted
// before the ack, it would be a delivery of a message not yet sent).
func (r *chatRun) drain(ctx context.Context, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		want, behind := r.maxSeq.Load(), false
		r.mu.Lock()
		for _, ch := range r.clients {
			if l := ch.last.Load(); l > want || (!ch.closed.Load() && l < want) {
				behind = true
				break
			}
		}
		r.mu.Unlock()
		if !behind {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *chatRun) report(window time.Duration) *ChatReport {
	rep := &ChatReport{
		Clients: r.cfg.Clients, Failed: int(r.failed.Load()), Senders: r.cfg.Senders, Window: window.Seconds(),
		Sent: r.sent.Load(), Refused: r.refused.Load(),
		Join: r.joins.percentiles(), Ack: r.ack.percentiles(), Latency: r.latency.percentiles(),
	}
	final := r.maxSeq.Load()
	r.mu.Lock()
	for _, ch := range r.clients {
		rep.Connected++
		if ch.closed.Load() {
			rep.Dropped++
		}
		if final > ch.c.Seq {
			rep.Expected += int64(final - ch.c.Seq)
		}
		rep.Delivered += ch.delivered.Load()
		rep.Duplicates += ch.dups.Load()
		// Missing seqs seen as gaps, plus what has not arrived by the end.
		rep.Gaps += ch.missing.Load()
		rep.Lost += ch.missing.Load()
		if l := ch.last.Load(); l < final {
			rep.Lost += int64(final - l)
		}
	}
	r.mu.Unlock()
	if rep.Expected > 0 {
		rep.Loss = 100 * float64(rep.Lost) / float64(rep.Expected)
	}
	if s := window.Seconds(); s > 0 {
		rep.PerSecond = float64(rep.Delivered) / s
	}
	return rep
}

func (r *chatRun) close() {
	r.mu.Lock()
	for _, ch := range r.clients {
		_ = ch.c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// WriteTable prints the report for a person.
func (rep *ChatReport) WriteTable(w io.Writer) {
	tw, row := newTable(w)
	row("mode", "chat")
	row("clients", "%d connected, %d failed of %d; %d dropped by the server", rep.Connected, rep.Failed, rep.Clients, rep.Dropped)
	row("window", "%.1f s (run %.1f s)", rep.Window, rep.Elapsed)
	row("messages", "%d sent by %d senders, %d refused", rep.Sent, rep.Senders, rep.Refused)
	row("deliveries", "%d of %d expected (%.0f/s), %d lost (%.4f%%), %d duplicates", rep.Delivered, rep.Expected, rep.PerSecond, rep.Lost, rep.Loss, rep.Duplicates)
	row("join (dial→welcome)", "%s", rep.Join)
	row("ack (send→ack)", "%s", rep.Ack)
	row("delivery latency", "%s", rep.Latency)
	row("tester CPU", "%.2f cores", rep.TesterCores)
	if s := rep.Server; s != nil {
		row("server CPU", "%.2f cores, %.2f µs per delivery", s.Cores, s.MicrosPerPacket)
		row("server memory", "%.1f MiB RSS", float64(s.RSSBytes)/(1<<20))
	}
	_ = tw.Flush()
}
