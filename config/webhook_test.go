package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWebhookSettingsLoadFromEveryPlace(t *testing.T) {
	c := Default()
	if err := c.LoadFile(writeFile(t, "c.yaml", "webhook:\n  urls: [https://a.example/hook]\n  timeout: 3s\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyEnv(envOf(map[string]string{"STARLING_WEBHOOK_API_KEY": "b"})); err != nil {
		t.Fatal(err)
	}
	if err := parseFlags(&c, "-webhook-urls", "https://b.example/1, http://c.example:8000/2", "-keys", "a:"+secret32+",b:"+secret32); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	w := c.Webhook
	if !slices.Equal(w.URLs, []string{"https://b.example/1", "http://c.example:8000/2"}) || w.APIKey != "b" || w.Timeout != 3*time.Second {
		t.Errorf("webhook = %+v", w)
	}
}

func TestWebhookValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"URL without scheme", func(c *Config) { c.Webhook.URLs = []string{"example.com/hook"} }, "webhook.urls"},
		{"URL of another scheme", func(c *Config) { c.Webhook.URLs = []string{"ftp://example.com/hook"} }, "webhook.urls"},
		{"URL without host", func(c *Config) { c.Webhook.URLs = []string{"https:///hook"} }, "webhook.urls"},
		{"unknown signing key", func(c *Config) {
			c.Keys = map[string]string{"a": secret32}
			c.Webhook.APIKey = "b"
		}, "webhook.api_key"},
		{"signing key without keys", func(c *Config) { c.Webhook.APIKey = "a" }, "webhook.api_key"},
		{"zero timeout", func(c *Config) { c.Webhook.Timeout = 0 }, "webhook.timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error about %s", err, tt.want)
			}
		})
	}
}

func TestWebhookKeyDefaultsToTheFirstKey(t *testing.T) {
	c := Default()
	if _, _, ok := c.WebhookKey(); ok {
		t.Error("a key with no keys configured")
	}
	c.Keys = map[string]string{"zed": "z" + secret32, "alpha": "a" + secret32, "mid": "m" + secret32}
	if k, s, ok := c.WebhookKey(); !ok || k != "alpha" || s != "a"+secret32 {
		t.Errorf("WebhookKey = %q, %q, %v; want alpha", k, s, ok)
	}
	c.Webhook.APIKey = "zed"
	if k, s, ok := c.WebhookKey(); !ok || k != "zed" || s != "z"+secret32 {
		t.Errorf("WebhookKey = %q, %q, %v; want zed", k, s, ok)
	}
}
