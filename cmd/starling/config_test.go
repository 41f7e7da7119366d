package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// load runs loadConfig as serve does, on a fresh flag set.
func load(args ...string) (string, int, string, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, err := loadConfig(fs, args)
	return cfg.HTTP.Addr, cfg.RTC.UDPPort, cfg.LogLevel, err
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "starling.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadConfigPrecedence checks defaults < YAML file < env < flags, with
// the file named by -config in any of its spellings or by STARLING_CONFIG.
func TestLoadConfigPrecedence(t *testing.T) {
	file := "http:\n  addr: \":9001\"\nrtc:\n  udp_port: 9002\nlog_level: warn\n"
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		addr     string
		udp      int
		logLevel string
	}{
		{name: "defaults", addr: ":8080", udp: 7882, logLevel: "info"},
		{name: "file via -config", args: []string{"-config", "FILE"}, addr: ":9001", udp: 9002, logLevel: "warn"},
		{name: "file via --config=", args: []string{"--config=FILE"}, addr: ":9001", udp: 9002, logLevel: "warn"},
		{name: "file via STARLING_CONFIG", env: map[string]string{"STARLING_CONFIG": "FILE"}, addr: ":9001", udp: 9002, logLevel: "warn"},
		{
			name: "env over file",
			env:  map[string]string{"STARLING_CONFIG": "FILE", "STARLING_UDP_PORT": "9003"},
			addr: ":9001", udp: 9003, logLevel: "warn",
		},
		{
			name: "flags over env",
			env:  map[string]string{"STARLING_UDP_PORT": "9003", "STARLING_LOG_LEVEL": "error"},
			args: []string{"-config", "FILE", "-udp-port", "9004"},
			addr: ":9001", udp: 9004, logLevel: "error",
		},
		{
			name: "flag placed before -config still wins",
			args: []string{"-log-level", "debug", "-config", "FILE"},
			addr: ":9001", udp: 9002, logLevel: "debug",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			path := writeConfig(t, file)
			for k, v := range tt.env {
				t.Setenv(k, strings.ReplaceAll(v, "FILE", path))
			}
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "FILE", path)
			}
			addr, udp, level, err := load(args...)
			if err != nil {
				t.Fatal(err)
			}
			if addr != tt.addr || udp != tt.udp || level != tt.logLevel {
				t.Errorf("addr %q, udp %d, log level %q; want %q, %d, %q", addr, udp, level, tt.addr, tt.udp, tt.logLevel)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		file string // written and passed as -config when set
		env  map[string]string
		args []string
		want string
	}{
		{name: "missing file", args: []string{"-config", "/nonexistent/starling.yaml"}, want: "/nonexistent/starling.yaml"},
		{name: "unknown key in file", file: "htpp:\n  addr: \":1\"\n", want: "htpp"},
		{name: "bad env value", env: map[string]string{"STARLING_MAX_SESSIONS": "many"}, want: "STARLING_MAX_SESSIONS"},
		{name: "bad flag value", args: []string{"-pli-interval", "fast"}, want: "-pli-interval"},
		{name: "invalid result", args: []string{"-log-level", "loud"}, want: "log_level"},
		{name: "short secret", env: map[string]string{"STARLING_KEYS": "k:short"}, want: "shorter than 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			if tt.file != "" {
				args = append([]string{"-config", writeConfig(t, tt.file)}, args...)
			}
			_, _, _, err := load(args...)
			if err == nil {
				t.Fatal("loadConfig succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestConfigPath(t *testing.T) {
	tests := []struct {
		args []string
		env  string
		want string
	}{
		{args: nil, want: ""},
		{args: nil, env: "/etc/starling.yaml", want: "/etc/starling.yaml"},
		{args: []string{"-config", "a.yaml"}, want: "a.yaml"},
		{args: []string{"--config", "a.yaml"}, want: "a.yaml"},
		{args: []string{"-config=a.yaml"}, want: "a.yaml"},
		{args: []string{"--config=a.yaml", "-udp-port", "1"}, want: "a.yaml"},
		{args: []string{"-udp-port", "1", "-config", "b.yaml"}, env: "/etc/starling.yaml", want: "b.yaml"},
		{args: []string{"-configure", "x"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+" env="+tt.env, func(t *testing.T) {
			isolateEnv(t)
			if tt.env != "" {
				t.Setenv("STARLING_CONFIG", tt.env)
			}
			if got := configPath(tt.args); got != tt.want {
				t.Errorf("configPath(%q) = %q, want %q", tt.args, got, tt.want)
			}
		})
	}
}
