package config

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const secret32 = "0123456789abcdef0123456789abcdef"

// writeFile writes content to a temporary file and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// envOf returns an ApplyEnv lookup that sees only vars.
func envOf(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// parseFlags registers c's flags on a fresh set and parses args.
func parseFlags(c *Config, args ...string) error {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	return fs.Parse(args)
}

func TestDefaultValidates(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	documented := map[string]bool{
		"http.addr :8080":        c.HTTP.Addr == ":8080",
		"rtc.udp_port 7882":      c.RTC.UDPPort == 7882,
		"rtc.tcp_port 7881":      c.RTC.TCPPort == 7881,
		"data_dir ./data":        c.DataDir == "./data",
		"log_level info":         c.LogLevel == "info",
		"no keys":                len(c.Keys) == 0,
		"whep.public_rooms true": c.WHEP.PublicRooms,
	}
	for name, ok := range documented {
		if !ok {
			t.Errorf("default is not %s", name)
		}
	}
}

func TestLoadFileOverridesOnlyWhatItNames(t *testing.T) {
	path := writeFile(t, "starling.yaml", `
http:
  addr: ":9090"
  allow_origins: [https://a.example, https://b.example]
rtc:
  udp_port: 50000
  pli_interval: 250ms
  public_ips: [203.0.113.7]
keys:
  prod: `+secret32+`
limits:
  max_sessions: 10
  connect_timeout: 5s
whep:
  public_rooms: false
log_level: debug
`)
	c := Default()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	def := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"http.addr", c.HTTP.Addr, ":9090"},
		{"http.allow_origins", c.HTTP.AllowOrigins, []string{"https://a.example", "https://b.example"}},
		{"rtc.udp_port", c.RTC.UDPPort, 50000},
		{"rtc.pli_interval", c.RTC.PLIInterval, 250 * time.Millisecond},
		{"rtc.public_ips", c.RTC.PublicIPs, []string{"203.0.113.7"}},
		{"keys", c.Keys, map[string]string{"prod": secret32}},
		{"limits.max_sessions", c.Limits.MaxSessions, 10},
		{"limits.connect_timeout", c.Limits.ConnectTimeout, 5 * time.Second},
		{"whep.public_rooms", c.WHEP.PublicRooms, false},
		{"log_level", c.LogLevel, "debug"},
		// Settings the file does not name keep their defaults.
		{"rtc.tcp_port", c.RTC.TCPPort, def.RTC.TCPPort},
		{"limits.max_body_bytes", c.Limits.MaxBodyBytes, def.Limits.MaxBodyBytes},
		{"limits.drain_timeout", c.Limits.DrainTimeout, def.Limits.DrainTimeout},
		{"data_dir", c.DataDir, def.DataDir},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
}

func TestLoadFileWithoutSettingsChangesNothing(t *testing.T) {
	for name, content := range map[string]string{
		"empty":         "",
		"comments only": "# nothing set yet\n",
		"empty mapping": "{}\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := Default()
			if err := c.LoadFile(writeFile(t, "c.yaml", content)); err != nil {
				t.Fatalf("LoadFile: %v", err)
			}
			if !reflect.DeepEqual(c, Default()) {
				t.Errorf("config changed: %+v", c)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string // substrings of the error
	}{
		{"unknown top-level key", "http_addr: \":1\"\n", []string{"http_addr", "not found"}},
		{"unknown nested key", "rtc:\n  udp_prot: 1\n", []string{"udp_prot", "not found"}},
		{"misspelled section", "limit:\n  max_sessions: 1\n", []string{"limit", "not found"}},
		{"int that is text", "rtc:\n  udp_port: lots\n", []string{"lots"}},
		{"duration without unit", "rtc:\n  pli_interval: 500\n", []string{"500", "time.Duration"}},
		{"bad duration", "limits:\n  drain_timeout: 5 parsecs\n", []string{"5 parsecs"}},
		{"list given as text", "http:\n  allow_origins: 7\n", []string{"line 2", "[]string"}},
		{"not yaml", "http: [\n", []string{"yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "bad.yaml", tt.content)
			c := Default()
			err := c.LoadFile(path)
			if err == nil {
				t.Fatal("LoadFile succeeded")
			}
			for _, s := range append(tt.want, path) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestLoadFileMissingFileIsAnError(t *testing.T) {
	c := Default()
	path := filepath.Join(t.TempDir(), "nope.yaml")
	err := c.LoadFile(path)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("LoadFile(missing) = %v, want an error naming the file", err)
	}
}

func TestEnvOverridesFile(t *testing.T) {
	path := writeFile(t, "c.yaml", "http:\n  addr: \":9090\"\nrtc:\n  udp_port: 50000\nlog_level: warn\n")
	c := Default()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	err := c.ApplyEnv(envOf(map[string]string{
		"STARLING_UDP_PORT":     "50001",
		"STARLING_LOG_LEVEL":    "error",
		"STARLING_PUBLIC_IPS":   "198.51.100.1, 198.51.100.2",
		"STARLING_WHEP_PUBLIC":  "false",
		"STARLING_PLI_INTERVAL": "1s",
		"UNRELATED":             "x",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":9090" {
		t.Errorf("http.addr = %q: the file's value should stay when no env var names it", c.HTTP.Addr)
	}
	if c.RTC.UDPPort != 50001 || c.LogLevel != "error" {
		t.Errorf("env did not override the file: udp_port %d, log_level %q", c.RTC.UDPPort, c.LogLevel)
	}
	if !slices.Equal(c.RTC.PublicIPs, []string{"198.51.100.1", "198.51.100.2"}) {
		t.Errorf("public_ips = %q", c.RTC.PublicIPs)
	}
	if c.WHEP.PublicRooms || c.RTC.PLIInterval != time.Second {
		t.Errorf("whep.public_rooms %v, rtc.pli_interval %v", c.WHEP.PublicRooms, c.RTC.PLIInterval)
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	c := Default()
	if err := c.ApplyEnv(envOf(map[string]string{
		"STARLING_HTTP_ADDR": ":7000",
		"STARLING_TCP_PORT":  "7001",
		"STARLING_KEYS":      "envkey:" + secret32,
	})); err != nil {
		t.Fatal(err)
	}
	if err := parseFlags(&c, "-tcp-port", "0", "--include-loopback", "-keys=flagkey:"+secret32); err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":7000" {
		t.Errorf("http.addr = %q: env value should stay when no flag names it", c.HTTP.Addr)
	}
	if c.RTC.TCPPort != 0 || !c.RTC.IncludeLoopback {
		t.Errorf("flags did not apply: tcp_port %d, include_loopback %v", c.RTC.TCPPort, c.RTC.IncludeLoopback)
	}
	// A -keys flag replaces the env's keys rather than adding to them.
	if !reflect.DeepEqual(c.Keys, map[string]string{"flagkey": secret32}) {
		t.Errorf("keys = %v", c.Keys)
	}
}

func TestBadEnvValuesNameTheVariable(t *testing.T) {
	tests := []struct{ env, value string }{
		{"STARLING_UDP_PORT", "eighty"},
		{"STARLING_MAX_BODY_BYTES", "64k"},
		{"STARLING_INCLUDE_LOOPBACK", "sometimes"},
		{"STARLING_CONNECT_TIMEOUT", "15"},
		{"STARLING_KEYS", "just-a-key"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			c := Default()
			err := c.ApplyEnv(envOf(map[string]string{tt.env: tt.value}))
			if err == nil {
				t.Fatalf("%s=%s accepted", tt.env, tt.value)
			}
			if !strings.Contains(err.Error(), tt.env) || !strings.Contains(err.Error(), tt.value) {
				t.Errorf("error %q should name %s and the value %q", err, tt.env, tt.value)
			}
		})
	}
}

func TestBadFlagValuesNameTheFlag(t *testing.T) {
	tests := [][]string{
		{"-udp-port", "eighty"},
		{"-max-sessions", "1.5"},
		{"-drain-timeout", "soon"},
		{"-whep-public=maybe"},
		{"-keys", "a:" + secret32 + ",b"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			c := Default()
			err := parseFlags(&c, args...)
			if err == nil {
				t.Fatalf("%q accepted", args)
			}
			name, _, _ := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
			if !strings.Contains(err.Error(), "-"+name) {
				t.Errorf("error %q does not name -%s", err, name)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"empty http addr", func(c *Config) { c.HTTP.Addr = "" }, "http.addr"},
		{"cert without key", func(c *Config) { c.HTTP.TLSCert = "cert.pem" }, "tls_key"},
		{"key without cert", func(c *Config) { c.HTTP.TLSKey = "key.pem" }, "tls_cert"},
		{"udp port too big", func(c *Config) { c.RTC.UDPPort = 65536 }, "rtc.udp_port"},
		{"negative udp port", func(c *Config) { c.RTC.UDPPort = -1 }, "rtc.udp_port"},
		{"tcp port too big", func(c *Config) { c.RTC.TCPPort = 70000 }, "rtc.tcp_port"},
		{"negative pli interval", func(c *Config) { c.RTC.PLIInterval = -time.Second }, "rtc.pli_interval"},
		{"zero body limit", func(c *Config) { c.Limits.MaxBodyBytes = 0 }, "limits.max_body_bytes"},
		{"zero sessions", func(c *Config) { c.Limits.MaxSessions = 0 }, "limits.max_sessions"},
		{"unknown log level", func(c *Config) { c.LogLevel = "verbose" }, "log_level"},
		{"short secret", func(c *Config) { c.Keys = map[string]string{"k": "short"} }, `"k"`},
		{"chat history over 500", func(c *Config) { c.Chat.History = 501 }, "chat.history"},
		{"zero chat rate", func(c *Config) { c.Chat.Rate = 0 }, "chat.rate"},
		{"tiny chat queue", func(c *Config) { c.Chat.SendQueue = 2 }, "chat.send_queue"},
		{"chat redis url without scheme", func(c *Config) { c.Chat.RedisURL = "localhost:6379" }, "chat.redis_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %s", err, tt.want)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"ICE-TCP off", func(c *Config) { c.RTC.TCPPort = 0 }},
		{"TLS pair", func(c *Config) { c.HTTP.TLSCert, c.HTTP.TLSKey = "cert.pem", "key.pem" }},
		{"secret of exactly 32 characters", func(c *Config) { c.Keys = map[string]string{"k": secret32} }},
		{"every log level", func(c *Config) { c.LogLevel = "warn" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestKeysParseKeySecretPairs(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{in: "a:" + secret32, want: map[string]string{"a": secret32}},
		{in: "a:" + secret32 + ", b:" + secret32 + "x", want: map[string]string{"a": secret32, "b": secret32 + "x"}},
		// Only the first colon separates: secrets may contain colons.
		{in: "a:" + secret32 + ":tail", want: map[string]string{"a": secret32 + ":tail"}},
		{in: "nocolon", wantErr: true},
		{in: ":" + secret32, wantErr: true},
		{in: "k:", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c := Default()
			err := c.ApplyEnv(envOf(map[string]string{"STARLING_KEYS": tt.in}))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("accepted %q as %v", tt.in, c.Keys)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Keys, tt.want) {
				t.Errorf("keys = %v, want %v", c.Keys, tt.want)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestKeysWithShortSecretFailValidation(t *testing.T) {
	c := Default()
	if err := c.ApplyEnv(envOf(map[string]string{"STARLING_KEYS": "good:" + secret32 + ",weak:" + secret32[:31]})); err != nil {
		t.Fatal(err)
	}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), `"weak"`) || !strings.Contains(err.Error(), "32") {
		t.Fatalf("Validate = %v, want an error about key \"weak\" and 32 characters", err)
	}
}

func TestKeysAreNotPrintedInHelp(t *testing.T) {
	c := Default()
	if err := c.ApplyEnv(envOf(map[string]string{"STARLING_KEYS": "k:" + secret32})); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var help strings.Builder
	fs.SetOutput(&help)
	c.RegisterFlags(fs)
	fs.PrintDefaults()
	if strings.Contains(help.String(), secret32) {
		t.Errorf("help output shows a secret:\n%s", help.String())
	}
}

func TestEnvName(t *testing.T) {
	for flagName, env := range map[string]string{
		"http-addr":                 "STARLING_HTTP_ADDR",
		"max-subscribers-per-track": "STARLING_MAX_SUBSCRIBERS_PER_TRACK",
		"keys":                      "STARLING_KEYS",
	} {
		if got := EnvName(flagName); got != env {
			t.Errorf("EnvName(%q) = %q, want %q", flagName, got, env)
		}
	}
}

// yamlLeaves maps the address of every settable leaf of c to its YAML path
// (e.g. "rtc.udp_port").
func yamlLeaves(v reflect.Value, prefix string, out map[uintptr]string) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			yamlLeaves(fv, prefix+name+".", out)
			continue
		}
		out[fv.Addr().Pointer()] = prefix + name
	}
}

// docRow is one documented setting: the backquoted spans of a table row,
// the first of which names it.
type docRow struct {
	key   string
	spans map[string]bool
}

// docRows reads the table rows of docs/config.md that start with a
// backquoted cell.
func docRows(t *testing.T) []docRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "config.md"))
	if err != nil {
		t.Fatalf("docs/config.md: %v", err)
	}
	var rows []docRow
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		parts := strings.Split(line, "`")
		row := docRow{key: parts[1], spans: map[string]bool{}}
		for i := 1; i < len(parts); i += 2 {
			row.spans[parts[i]] = true
		}
		rows = append(rows, row)
	}
	return rows
}

// TestDocsListEverySetting keeps docs/config.md exact: every setting has a
// row that starts with its YAML key and names its flag, env var and default,
// each in backquotes.
func TestDocsListEverySetting(t *testing.T) {
	rows := map[string]docRow{}
	for _, r := range docRows(t) {
		rows[r.key] = r
	}
	c := Default()
	leaves := map[uintptr]string{}
	yamlLeaves(reflect.ValueOf(&c).Elem(), "", leaves)

	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	documented := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		key, ok := leaves[reflect.ValueOf(f.Value).Pointer()]
		if !ok {
			t.Errorf("flag -%s sets no YAML field of Config", f.Name)
			return
		}
		documented[key] = true
		r, ok := rows[key]
		if !ok {
			t.Errorf("docs/config.md has no row for %s (-%s, %s, default %q)", key, f.Name, EnvName(f.Name), f.DefValue)
			return
		}
		want := []string{"-" + f.Name, EnvName(f.Name)}
		if f.DefValue != "" {
			want = append(want, f.DefValue)
		}
		for _, w := range want {
			if !r.spans[w] {
				t.Errorf("docs/config.md: the row of %s lacks `%s`", key, w)
			}
		}
	})
	for _, key := range leaves {
		if _, ok := rows[key]; !ok && !documented[key] {
			t.Errorf("docs/config.md has no row for %s", key)
		}
	}
	for key := range rows {
		if !documented[key] && !slices.Contains(mapValues(leaves), key) {
			t.Errorf("docs/config.md documents %s, which is not a setting", key)
		}
	}
}

func mapValues(m map[uintptr]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestDocsExampleIsValid loads the example file of docs/config.md.
func TestDocsExampleIsValid(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "```yaml\n")
	example, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatal("docs/config.md has no ```yaml example")
	}
	c := Default()
	if err := c.LoadFile(writeFile(t, "example.yaml", example)); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.HTTP.PublicURL != "https://live.example.com" || len(c.RTC.PublicIPs) != 1 || len(c.Keys) != 1 {
		t.Fatalf("example did not load as documented: %+v", c)
	}
	// Apart from the three settings its comments call out, the example shows
	// the defaults. (%+v prints nil and empty lists alike.)
	c.HTTP.PublicURL, c.RTC.PublicIPs, c.Keys = "", nil, nil
	if got, want := fmt.Sprintf("%+v", c), fmt.Sprintf("%+v", Default()); got != want {
		t.Errorf("the example's values are not the defaults:\n got %s\nwant %s", got, want)
	}
}

func TestRedisPasswordIsNotPrintedInHelp(t *testing.T) {
	c := Default()
	c.Chat.RedisURL = "redis://:hunter2@redis:6379/0"
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.RegisterFlags(fs)
	var help strings.Builder
	fs.SetOutput(&help)
	fs.PrintDefaults()
	if strings.Contains(help.String(), "hunter2") {
		t.Errorf("help shows the Redis password:\n%s", help.String())
	}
}
