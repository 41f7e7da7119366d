// Package config defines Starling's settings, their defaults, and how they are
// loaded: defaults, then a YAML file, then STARLING_* environment variables,
// then command-line flags, each overriding the one before.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
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
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
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
		WHEP:     WHEP{PublicRooms: true},
		LogLevel: "info",
	}
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
