// Package config defines Starling's settings, their defaults, and how they are
// loaded: defaults, then a YAML file, then STARLING_* environment variables,
// then command-line flags, each overriding the one before.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole server configuration. Field comments are the reference
// that docs/config.md mirrors.
type Config struct {
	// HTTP serves the web pages, WHIP, WHEP, /metrics and /healthz.
	HTTP HTTP `yaml:"http"`
	// RTC holds the WebRTC transport settings.
	RTC RTC `yaml:"rtc"`
	// Keys maps API keys to their secrets; tokens are signed with one of them.
	// When empty, serve generates a development pair and prints it.
	Keys map[string]string `yaml:"keys"`
	// DataDir holds persistent state (SQLite databases).
	DataDir string `yaml:"data_dir"`
	// Limits bound what one node accepts.
	Limits Limits `yaml:"limits"`
	// WHEP settings for viewers.
	WHEP WHEP `yaml:"whep"`
	// TURN configures the embedded TURN server and the TURN credentials
	// offered to clients (docs/turn.md).
	TURN TURN `yaml:"turn"`
	// Chat configures the chat and polls websocket (docs/chat-protocol.md).
	Chat Chat `yaml:"chat"`
	// HLS configures the LL-HLS ladder (docs/hls.md).
	HLS HLS `yaml:"hls"`
	// Webhook configures the signed webhook events sent to HTTP receivers.
	Webhook Webhook `yaml:"webhook"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
}

// Chat configures chat and polls.
type Chat struct {
	// Enabled serves /chat/{room}.
	Enabled bool `yaml:"enabled"`
	// RedisURL, when set, keeps chat in Redis so that several nodes serve
	// one room's chat; otherwise it is kept in SQLite in DataDir.
	RedisURL string `yaml:"redis_url"`
	// AnonymousRead lets clients without a token read (not write or vote).
	AnonymousRead bool `yaml:"anonymous_read"`
	// History is how many recent events a joining client gets by default.
	History int `yaml:"history"`
	// MaxText caps a message, in characters.
	MaxText int `yaml:"max_text"`
	// Rate and Burst bound each identity's messages (token bucket).
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// SendQueue is how many messages may wait for one slow client before
	// it is disconnected (it resumes from its last sequence number).
	SendQueue int `yaml:"send_queue"`
}

// HLS configures the LL-HLS ladder: ffmpeg transcodes each publisher's
// stream and the origin serves it at /hls/{room}/{participant}/index.m3u8.
type HLS struct {
	// Mode is when a publisher's ladder starts: "on-demand" (at the first
	// HLS request for it), "live" (as soon as it publishes) or "off".
	Mode string `yaml:"mode"`
	// FFmpeg is the ffmpeg binary, a path or a name on PATH. Without it
	// Starling serves WebRTC only and answers HLS requests with 503.
	FFmpeg string `yaml:"ffmpeg"`
	// Backend is the encoder: "auto" (probe nvenc, nvdec, vaapi, qsv,
	// libx264 by encoding a few frames with each) or one of them.
	Backend string `yaml:"backend"`
	// Ladder lists the renditions as WIDTHxHEIGHT:KBITS, largest first;
	// rungs taller than the source are left out.
	Ladder []string `yaml:"ladder"`
	// AudioBitrate is the AAC bitrate, bit/s.
	AudioBitrate int `yaml:"audio_bitrate"`
	// PartTarget and SegmentTarget are the LL-HLS part and segment
	// durations; the segment is a whole number of parts.
	PartTarget    time.Duration `yaml:"part_target"`
	SegmentTarget time.Duration `yaml:"segment_target"`
	// KeyframeInterval is the IDR cadence of the transcoded renditions: it
	// divides SegmentTarget and is a whole number of parts, so every
	// segment starts with an IDR and the parts that start with the others
	// are INDEPENDENT, where players may join.
	KeyframeInterval time.Duration `yaml:"keyframe_interval"`
	// Passthrough is "simulcast" (an H.264 simulcast publisher's own layers
	// are the ladder; only its audio is transcoded) or "off" (always
	// transcode).
	Passthrough string `yaml:"passthrough"`
	// IdleTimeout stops an on-demand ladder nobody has requested for this
	// long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// Webhook says where room, participant and track events are sent, signed
// as LiveKit signs them.
type Webhook struct {
	// URLs receive every event (http:// or https://); none sends nothing.
	URLs []string `yaml:"urls"`
	// APIKey names the key of Keys whose secret signs the events; when
	// empty, the key that sorts first.
	APIKey string `yaml:"api_key"`
	// Timeout bounds one delivery attempt.
	Timeout time.Duration `yaml:"timeout"`
}

func (w *Webhook) validate(keys map[string]string) error {
	for _, raw := range w.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: webhook.urls: %q is not an http:// or https:// URL", raw)
		}
	}
	if _, ok := keys[w.APIKey]; w.APIKey != "" && !ok {
		return fmt.Errorf("config: webhook.api_key %q is not one of keys", w.APIKey)
	}
	if w.Timeout <= 0 {
		return errors.New("config: webhook.timeout must be positive")
	}
	return nil
}

// WebhookKey returns the API key and secret that sign webhook events:
// webhook.api_key, else the key that sorts first (as `starling token`
// picks). ok is false when there is no such key.
func (c *Config) WebhookKey() (key, secret string, ok bool) {
	key = c.Webhook.APIKey
	if key == "" {
		for k := range c.Keys {
			if key == "" || k < key {
				key = k
			}
		}
	}
	secret, ok = c.Keys[key]
	return key, secret, ok
}

// ladderRung matches one rung of HLS.Ladder.
var ladderRung = regexp.MustCompile(`^([1-9][0-9]{1,4})x([1-9][0-9]{1,4}):([1-9][0-9]{1,6})$`)

func (h *HLS) validate() error {
	switch h.Mode {
	case "on-demand", "live", "off":
	default:
		return fmt.Errorf("config: hls.mode %q is not on-demand, live or off", h.Mode)
	}
	switch h.Backend {
	case "auto", "nvenc", "nvdec", "vaapi", "qsv", "libx264":
	default:
		return fmt.Errorf("config: hls.backend %q is not auto, nvenc, nvdec, vaapi, qsv or libx264", h.Backend)
	}
	if len(h.Ladder) == 0 {
		return errors.New("config: hls.ladder is empty")
	}
	for _, r := range h.Ladder {
		if !ladderRung.MatchString(r) {
			return fmt.Errorf("config: hls.ladder rung %q is not WIDTHxHEIGHT:KBITS, e.g. 1280x720:2800", r)
		}
	}
	if h.PartTarget < 100*time.Millisecond || h.PartTarget > 2*time.Second {
		return fmt.Errorf("config: hls.part_target %v is not within 100ms-2s", h.PartTarget)
	}
	if h.SegmentTarget < h.PartTarget || h.SegmentTarget%h.PartTarget != 0 || h.SegmentTarget > 10*time.Second {
		return fmt.Errorf("config: hls.segment_target %v is not a whole number of parts (%v) up to 10s", h.SegmentTarget, h.PartTarget)
	}
	if k := h.KeyframeInterval; k < h.PartTarget || k%h.PartTarget != 0 || h.SegmentTarget%k != 0 {
		return fmt.Errorf("config: hls.keyframe_interval %v is not a whole number of parts (%v) dividing the segment (%v)", k, h.PartTarget, h.SegmentTarget)
	}
	switch h.Passthrough {
	case "simulcast", "off":
	default:
		return fmt.Errorf("config: hls.passthrough %q is not simulcast or off", h.Passthrough)
	}
	if h.AudioBitrate < 32_000 || h.AudioBitrate > 512_000 {
		return fmt.Errorf("config: hls.audio_bitrate %d is not within 32000-512000", h.AudioBitrate)
	}
	if h.IdleTimeout < time.Second {
		return fmt.Errorf("config: hls.idle_timeout %v is below 1s", h.IdleTimeout)
	}
	return nil
}

// HTTP configures the HTTP listener.
type HTTP struct {
	// Addr is the listen address, e.g. ":8080".
	Addr string `yaml:"addr"`
	// TLSCert and TLSKey, when both set, serve HTTPS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// PublicURL is the base URL printed for users (WHIP URL hints); derived
	// from Addr when empty.
	PublicURL string `yaml:"public_url"`
	// AllowOrigins lists origins allowed by CORS; "*" allows any.
	AllowOrigins []string `yaml:"allow_origins"`
}

// RTC configures ICE and media transport.
type RTC struct {
	// UDPPort is the single UDP port all ICE traffic is muxed on.
	UDPPort int `yaml:"udp_port"`
	// TCPPort is the ICE-TCP fallback port; 0 disables ICE-TCP.
	TCPPort int `yaml:"tcp_port"`
	// PublicIPs are advertised as host candidates instead of the local
	// addresses (1:1 NAT, e.g. a cloud VM's public address).
	PublicIPs []string `yaml:"public_ips"`
	// Interfaces, when set, restricts ICE gathering to these interface names.
	Interfaces []string `yaml:"interfaces"`
	// IncludeLoopback also gathers loopback candidates (tests, local demos).
	IncludeLoopback bool `yaml:"include_loopback"`
	// PLIInterval is the minimum interval between keyframe requests sent to a
	// publisher for one layer, however many subscribers ask.
	PLIInterval time.Duration `yaml:"pli_interval"`
}

// Limits bounds resource use.
type Limits struct {
	// MaxBodyBytes caps WHIP/WHEP request bodies.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxSessions caps concurrent WHIP+WHEP sessions; beyond it POST gets 503.
	MaxSessions int `yaml:"max_sessions"`
	// MaxSubscribersPerTrack caps viewers of one published track.
	MaxSubscribersPerTrack int `yaml:"max_subscribers_per_track"`
	// ConnectTimeout closes a session whose ICE/DTLS has not connected in time.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// DrainTimeout bounds graceful shutdown.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// WHEP configures playback.
type WHEP struct {
	// PublicRooms lets viewers play without a token.
	PublicRooms bool `yaml:"public_rooms"`
}

// TURN configures relaying for peers that cannot reach the media ports
// directly. Clients get short-lived credentials in the TURN REST scheme
// (username "expiry:identity", password base64(HMAC-SHA1(secret, username)))
// in WHIP/WHEP Link headers and from GET /ice-servers.
type TURN struct {
	// Enabled runs the embedded TURN server.
	Enabled bool `yaml:"enabled"`
	// UDPPort and TCPPort are the TURN listen ports; 0 turns one off.
	UDPPort int `yaml:"udp_port"`
	TCPPort int `yaml:"tcp_port"`
	// TLSPort is the TURN-over-TLS port, served when a certificate is
	// configured (turn.tls_cert, else http.tls_cert); 0 turns it off.
	TLSPort int `yaml:"tls_port"`
	// TLSCert and TLSKey are the certificate for TLSPort; when empty, the
	// HTTP certificate is used.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// PublicIP is the IPv4 address relayed addresses are announced at and
	// the TURN URLs name; default rtc.public_ips[0], else the address of the
	// default route's interface.
	PublicIP string `yaml:"public_ip"`
	// Host is the name put in the TURN URLs instead of PublicIP; a turns:
	// URL needs the name the certificate is for.
	Host string `yaml:"host"`
	// RelayPortMin and RelayPortMax bound the relay ports (UDP), inclusive.
	RelayPortMin int `yaml:"relay_port_min"`
	RelayPortMax int `yaml:"relay_port_max"`
	// Realm is the TURN realm.
	Realm string `yaml:"realm"`
	// Secret is the shared secret credentials are signed with; at least 16
	// characters. When empty, a random one is made at each start (fine for
	// the embedded server alone; an external TURN server needs it set).
	Secret string `yaml:"secret"`
	// TTL is how long a credential is valid. Allocation refreshes need a
	// valid credential, so it also bounds how long a relayed session lasts.
	TTL time.Duration `yaml:"ttl"`
	// AllowLoopback lets the relay reach loopback peers (tests, one-machine
	// demos). Loopback, private, link-local and other non-public peers are
	// refused otherwise.
	AllowLoopback bool `yaml:"allow_loopback"`
	// AllowedPeerNetworks are CIDRs (or single IPs) relayed to even where the
	// default rules refuse them, e.g. the SFU's private address.
	AllowedPeerNetworks []string `yaml:"allowed_peer_networks"`
	// RelayToAnyPublic lets the relay reach any public address. Off, it
	// reaches only this node's own media addresses (and AllowedPeerNetworks):
	// all an SFU's clients need, and no open relay for anyone holding a
	// credential.
	RelayToAnyPublic bool `yaml:"relay_to_any_public"`
	// MaxAllocationsPerIdentity caps one identity's live allocations.
	MaxAllocationsPerIdentity int `yaml:"max_allocations_per_identity"`
	// ExternalURLs, when set, are the TURN servers offered to clients
	// instead of the embedded one (which then does not start), e.g. coturn
	// with use-auth-secret and static-auth-secret = Secret.
	ExternalURLs []string `yaml:"external_urls"`
}

// InUse reports whether clients are offered TURN servers, embedded or external.
func (t TURN) InUse() bool { return t.Enabled || len(t.ExternalURLs) > 0 }

// Default returns the embedded defaults used by `starling serve` with no config.
func Default() Config {
	return Config{
		HTTP: HTTP{Addr: ":8080", AllowOrigins: []string{"*"}},
		RTC: RTC{
			UDPPort:     7882,
			TCPPort:     7881,
			PLIInterval: 500 * time.Millisecond,
		},
		DataDir: "./data",
		Limits: Limits{
			MaxBodyBytes:           64 << 10,
			MaxSessions:            2000,
			MaxSubscribersPerTrack: 1000,
			ConnectTimeout:         15 * time.Second,
			DrainTimeout:           10 * time.Second,
		},
		WHEP: WHEP{PublicRooms: true},
		TURN: TURN{
			Enabled:      true,
			UDPPort:      3478,
			TCPPort:      3478,
			TLSPort:      5349,
			RelayPortMin: 49152,
			RelayPortMax: 65535,
			Realm:        "starling",
			// Refreshes need a valid credential, so this bounds a relayed
			// session: longer than a long event, short enough that a leaked
			// credential is soon worthless.
			TTL: 12 * time.Hour,
			// Browsers allocate once per TURN URL per local network
			// interface (Chromium: 6 for 2 URLs in a container, more on a
			// multi-homed laptop); 32 leaves room for a few tabs.
			MaxAllocationsPerIdentity: 32,
		},
		Chat: Chat{
			Enabled:       true,
			AnonymousRead: true,
			History:       50,
			MaxText:       1000,
			Rate:          2,
			Burst:         10,
			SendQueue:     256,
		},
		HLS: HLS{
			Mode:             "on-demand",
			FFmpeg:           "ffmpeg",
			Backend:          "auto",
			Ladder:           []string{"1920x1080:5000", "1280x720:2800", "854x480:1200", "640x360:700"},
			AudioBitrate:     128_000,
			PartTarget:       250 * time.Millisecond,
			SegmentTarget:    2 * time.Second,
			KeyframeInterval: time.Second,
			Passthrough:      "simulcast",
			IdleTimeout:      time.Minute,
		},
		Webhook:  Webhook{Timeout: 10 * time.Second},
		LogLevel: "info",
	}
}

func (c *Chat) validate() error {
	if !c.Enabled {
		return nil
	}
	switch {
	case c.History < 0 || c.History > 500:
		return fmt.Errorf("config: chat.history %d is not within 0-500", c.History)
	case c.MaxText <= 0:
		return errors.New("config: chat.max_text must be positive")
	case c.Rate <= 0 || c.Burst <= 0:
		return errors.New("config: chat.rate and chat.burst must be positive")
	case c.SendQueue < 16:
		return fmt.Errorf("config: chat.send_queue %d is below 16", c.SendQueue)
	case c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://"):
		return fmt.Errorf("config: chat.redis_url %q is not a redis:// or rediss:// URL", c.RedisURL)
	}
	return nil
}

func (t *TURN) validate() error {
	if !t.InUse() {
		return nil
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"udp_port", t.UDPPort}, {"tcp_port", t.TCPPort}, {"tls_port", t.TLSPort}} {
		if p.v < 0 || p.v > 65535 {
			return fmt.Errorf("config: turn.%s %d out of range", p.name, p.v)
		}
	}
	switch {
	case t.TTL <= 0:
		return errors.New("config: turn.ttl must be positive")
	case t.Secret != "" && len(t.Secret) < 16:
		return errors.New("config: turn.secret is shorter than 16 characters")
	case len(t.ExternalURLs) > 0 && t.Secret == "":
		return errors.New("config: turn.external_urls needs turn.secret, the static-auth-secret of those servers")
	case len(t.ExternalURLs) > 0:
		for _, u := range t.ExternalURLs {
			if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				return fmt.Errorf("config: turn.external_urls: %q is not a turn: or turns: URL", u)
			}
		}
		return nil
	}
	switch {
	case t.UDPPort == 0 && t.TCPPort == 0 && t.TLSPort == 0:
		return errors.New("config: turn is enabled but udp_port, tcp_port and tls_port are all 0")
	case t.RelayPortMin < 1 || t.RelayPortMax > 65535 || t.RelayPortMin > t.RelayPortMax:
		return fmt.Errorf("config: turn relay ports %d-%d are not a range", t.RelayPortMin, t.RelayPortMax)
	case (t.TLSCert == "") != (t.TLSKey == ""):
		return errors.New("config: turn.tls_cert and turn.tls_key must be set together")
	case t.MaxAllocationsPerIdentity <= 0:
		return errors.New("config: turn.max_allocations_per_identity must be positive")
	}
	if t.PublicIP != "" {
		if ip := net.ParseIP(t.PublicIP); ip == nil || ip.To4() == nil {
			return fmt.Errorf("config: turn.public_ip %q is not an IPv4 address", t.PublicIP)
		}
	}
	for _, n := range t.AllowedPeerNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			if _, err := netip.ParseAddr(n); err != nil {
				return fmt.Errorf("config: turn.allowed_peer_networks: %q is not a CIDR or an IP", n)
			}
		}
	}
	return nil
}

// LoadFile overlays the YAML file at path onto c. Unknown keys are an error so
// that typos do not pass silently.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	// An empty file decodes to io.EOF: no overrides.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return nil
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.HTTP.Addr == "":
		return errors.New("config: http.addr is empty")
	case (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == ""):
		return errors.New("config: http.tls_cert and http.tls_key must be set together")
	case c.RTC.UDPPort < 0 || c.RTC.UDPPort > 65535:
		return fmt.Errorf("config: rtc.udp_port %d out of range", c.RTC.UDPPort)
	case c.RTC.TCPPort < 0 || c.RTC.TCPPort > 65535:
		return fmt.Errorf("config: rtc.tcp_port %d out of range", c.RTC.TCPPort)
	case c.RTC.PLIInterval < 0:
		return errors.New("config: rtc.pli_interval is negative")
	case c.Limits.MaxBodyBytes <= 0:
		return errors.New("config: limits.max_body_bytes must be positive")
	case c.Limits.MaxSessions <= 0:
		return errors.New("config: limits.max_sessions must be positive")
	}
	if err := c.TURN.validate(); err != nil {
		return err
	}
	if err := c.HLS.validate(); err != nil {
		return err
	}
	if err := c.Chat.validate(); err != nil {
		return err
	}
	if err := c.Webhook.validate(c.Keys); err != nil {
		return err
	}
	for k, s := range c.Keys {
		if len(s) < 32 {
			return fmt.Errorf("config: secret for key %q is shorter than 32 characters", k)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log_level %q is not debug, info, warn or error", c.LogLevel)
	}
	return nil
}
