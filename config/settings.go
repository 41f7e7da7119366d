package config

import (
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// setting is one configurable value reachable as a flag and as an env var.
type setting struct {
	name  string // flag name; env var is STARLING_ + upper(name with - → _)
	usage string
	value flag.Value
}

// EnvName is the environment variable that sets the flag called name.
func EnvName(name string) string {
	return "STARLING_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func (c *Config) settings() []setting {
	return []setting{
		{"http-addr", "HTTP listen address", (*stringValue)(&c.HTTP.Addr)},
		{"tls-cert", "TLS certificate file (PEM); enables HTTPS with tls-key", (*stringValue)(&c.HTTP.TLSCert)},
		{"tls-key", "TLS private key file (PEM)", (*stringValue)(&c.HTTP.TLSKey)},
		{"public-url", "base URL shown to users, e.g. https://live.example.com", (*stringValue)(&c.HTTP.PublicURL)},
		{"allow-origins", "comma-separated CORS origins, * for any", (*listValue)(&c.HTTP.AllowOrigins)},
		{"udp-port", "ICE UDP mux port", (*intValue)(&c.RTC.UDPPort)},
		{"tcp-port", "ICE-TCP port, 0 disables", (*intValue)(&c.RTC.TCPPort)},
		{"public-ips", "comma-separated public IPs advertised as host candidates (1:1 NAT)", (*listValue)(&c.RTC.PublicIPs)},
		{"interfaces", "comma-separated interface names ICE may use (default all)", (*listValue)(&c.RTC.Interfaces)},
		{"include-loopback", "also offer loopback ICE candidates", (*boolValue)(&c.RTC.IncludeLoopback)},
		{"pli-interval", "minimum interval between keyframe requests per layer", (*durationValue)(&c.RTC.PLIInterval)},
		{"keys", "API keys as key:secret[,key:secret]", (*keysValue)(&c.Keys)},
		{"data-dir", "directory for persistent state", (*stringValue)(&c.DataDir)},
		{"max-body-bytes", "largest accepted WHIP/WHEP body", (*int64Value)(&c.Limits.MaxBodyBytes)},
		{"max-sessions", "most concurrent WHIP+WHEP sessions", (*intValue)(&c.Limits.MaxSessions)},
		{"max-subscribers-per-track", "most viewers of one track", (*intValue)(&c.Limits.MaxSubscribersPerTrack)},
		{"connect-timeout", "close sessions not connected within this time", (*durationValue)(&c.Limits.ConnectTimeout)},
		{"drain-timeout", "longest graceful shutdown", (*durationValue)(&c.Limits.DrainTimeout)},
		{"whep-public", "allow WHEP playback without a token", (*boolValue)(&c.WHEP.PublicRooms)},
		{"turn-enabled", "run the embedded TURN server", (*boolValue)(&c.TURN.Enabled)},
		{"turn-udp-port", "TURN UDP port, 0 disables", (*intValue)(&c.TURN.UDPPort)},
		{"turn-tcp-port", "TURN TCP port, 0 disables", (*intValue)(&c.TURN.TCPPort)},
		{"turn-tls-port", "TURN-over-TLS port (needs a certificate), 0 disables", (*intValue)(&c.TURN.TLSPort)},
		{"turn-tls-cert", "TURN TLS certificate file (PEM); default the HTTP one", (*stringValue)(&c.TURN.TLSCert)},
		{"turn-tls-key", "TURN TLS private key file (PEM)", (*stringValue)(&c.TURN.TLSKey)},
		{"turn-public-ip", "IPv4 address relays are announced at (default rtc public IP, else the default route's)", (*stringValue)(&c.TURN.PublicIP)},
		{"turn-host", "host name in TURN URLs (needed for turns: certificates); default the public IP", (*stringValue)(&c.TURN.Host)},
		{"turn-relay-port-min", "lowest TURN relay port", (*intValue)(&c.TURN.RelayPortMin)},
		{"turn-relay-port-max", "highest TURN relay port", (*intValue)(&c.TURN.RelayPortMax)},
		{"turn-realm", "TURN realm", (*stringValue)(&c.TURN.Realm)},
		{"turn-secret", "TURN REST shared secret (coturn static-auth-secret); random per start when empty", (*secretValue)(&c.TURN.Secret)},
		{"turn-ttl", "lifetime of TURN credentials (and so of a relayed session)", (*durationValue)(&c.TURN.TTL)},
		{"turn-allow-loopback", "let TURN relay to loopback peers (tests, local demos)", (*boolValue)(&c.TURN.AllowLoopback)},
		{"turn-relay-to-any-public", "let TURN relay to any public address, not only this node's media addresses", (*boolValue)(&c.TURN.RelayToAnyPublic)},
		{"turn-allowed-peer-networks", "comma-separated CIDRs TURN may relay to despite the private/link-local rules", (*listValue)(&c.TURN.AllowedPeerNetworks)},
		{"turn-max-allocations-per-identity", "most live TURN allocations of one identity", (*intValue)(&c.TURN.MaxAllocationsPerIdentity)},
		{"turn-external-urls", "comma-separated turn:/turns: URLs of external TURN servers to offer instead of the embedded one", (*listValue)(&c.TURN.ExternalURLs)},
		{"chat-enabled", "serve chat and polls at /chat/{room}", (*boolValue)(&c.Chat.Enabled)},
		{"chat-redis-url", "redis:// URL keeping chat for several nodes; default SQLite in data-dir", (*secretURLValue)(&c.Chat.RedisURL)},
		{"chat-anonymous-read", "let clients without a token read chat", (*boolValue)(&c.Chat.AnonymousRead)},
		{"chat-history", "recent chat events a joining client gets (at most 500)", (*intValue)(&c.Chat.History)},
		{"chat-max-text", "longest chat message, in characters", (*intValue)(&c.Chat.MaxText)},
		{"chat-rate", "chat messages per second per identity", (*floatValue)(&c.Chat.Rate)},
		{"chat-burst", "chat messages one identity may send at once", (*intValue)(&c.Chat.Burst)},
		{"chat-send-queue", "messages queued for a slow chat client before it is disconnected", (*intValue)(&c.Chat.SendQueue)},
		{"hls-mode", "when a publisher's LL-HLS ladder starts: on-demand, live or off", (*stringValue)(&c.HLS.Mode)},
		{"hls-ffmpeg", "ffmpeg binary for the LL-HLS ladder (path or name on PATH)", (*stringValue)(&c.HLS.FFmpeg)},
		{"hls-backend", "LL-HLS encoder: auto, nvenc, nvdec, vaapi, qsv or libx264", (*stringValue)(&c.HLS.Backend)},
		{"hls-ladder", "comma-separated LL-HLS renditions WIDTHxHEIGHT:KBITS, largest first", (*listValue)(&c.HLS.Ladder)},
		{"hls-audio-bitrate", "LL-HLS AAC bitrate, bit/s", (*intValue)(&c.HLS.AudioBitrate)},
		{"hls-part-target", "LL-HLS part duration", (*durationValue)(&c.HLS.PartTarget)},
		{"hls-segment-target", "LL-HLS segment duration (a whole number of parts)", (*durationValue)(&c.HLS.SegmentTarget)},
		{"hls-keyframe-interval", "LL-HLS IDR cadence of transcoded renditions (whole parts, dividing the segment)", (*durationValue)(&c.HLS.KeyframeInterval)},
		{"hls-passthrough", "serve an H.264 simulcast publisher's own layers as the LL-HLS ladder: simulcast or off", (*stringValue)(&c.HLS.Passthrough)},
		{"hls-idle-timeout", "stop an on-demand LL-HLS ladder nobody requested for this long", (*durationValue)(&c.HLS.IdleTimeout)},
		{"webhook-urls", "comma-separated URLs that receive signed room, participant and track events", (*listValue)(&c.Webhook.URLs)},
		{"webhook-api-key", "API key whose secret signs webhook events (default the first key)", (*stringValue)(&c.Webhook.APIKey)},
		{"webhook-timeout", "longest webhook delivery attempt", (*durationValue)(&c.Webhook.Timeout)},
		{"log-level", "debug, info, warn or error", (*stringValue)(&c.LogLevel)},
	}
}

// RegisterFlags adds every setting to fs, bound to c.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	for _, s := range c.settings() {
		fs.Var(s.value, s.name, s.usage+" (env "+EnvName(s.name)+")")
	}
}

// ApplyEnv sets every setting whose STARLING_* variable lookup finds.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	for _, s := range c.settings() {
		v, ok := lookup(EnvName(s.name))
		if !ok {
			continue
		}
		if err := s.value.Set(v); err != nil {
			return fmt.Errorf("config: %s: %w", EnvName(s.name), err)
		}
	}
	return nil
}

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

// secretValue is a string that help output does not print.
type secretValue string

func (v *secretValue) String() string {
	if *v == "" {
		return ""
	}
	return "***"
}
func (v *secretValue) Set(s string) error { *v = secretValue(s); return nil }

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	*v = intValue(n)
	return err
}

type int64Value int64

func (v *int64Value) String() string { return strconv.FormatInt(int64(*v), 10) }
func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	*v = int64Value(n)
	return err
}

type boolValue bool

func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	*v = boolValue(b)
	return err
}

type floatValue float64

func (v *floatValue) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }
func (v *floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	*v = floatValue(f)
	return err
}

// secretURLValue is a URL whose password help output does not print.
type secretURLValue string

func (v *secretURLValue) String() string {
	u, err := url.Parse(string(*v))
	if err != nil || u.User == nil {
		return string(*v)
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "***")
	}
	return u.String()
}
func (v *secretURLValue) Set(s string) error { *v = secretURLValue(s); return nil }

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	*v = durationValue(d)
	return err
}

type listValue []string

func (v *listValue) String() string { return strings.Join(*v, ",") }
func (v *listValue) Set(s string) error {
	*v = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*v = append(*v, p)
		}
	}
	return nil
}

type keysValue map[string]string

func (v *keysValue) String() string {
	parts := make([]string, 0, len(*v))
	for k := range *v {
		parts = append(parts, k+":***")
	}
	return strings.Join(parts, ",")
}

func (v *keysValue) Set(s string) error {
	m := map[string]string{}
	for _, p := range strings.Split(s, ",") {
		k, sec, ok := strings.Cut(strings.TrimSpace(p), ":")
		if !ok || k == "" || sec == "" {
			return fmt.Errorf("key %q is not key:secret", p)
		}
		m[k] = sec
	}
	*v = m
	return nil
}
