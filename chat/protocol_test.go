package chat

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeChecksEachTypesFields(t *testing.T) {
	for _, tc := range []struct {
		frame string
		code  string // "" accepts
	}{
		{`{"type":"hello"}`, ""},
		{`{"type":"hello","token":"t","since":41}`, ""},
		{`{"type":"hello","history":-1}`, codeBadRequest},
		{`{"type":"hello","since":-1}`, codeBadRequest},
		{`{"type":"send","client_id":"a","text":"hi"}`, ""},
		{`{"type":"send","client_id":"a","text":"` + strings.Repeat("é", 10) + `"}`, ""},
		{`{"type":"send","client_id":"a","text":"` + strings.Repeat("é", 11) + `"}`, codeTooLong},
		{`{"type":"send","text":"hi"}`, codeBadRequest},
		{`{"type":"send","client_id":"a"}`, codeBadRequest},
		{`{"type":"send","client_id":"` + strings.Repeat("x", 65) + `","text":"hi"}`, codeTooLong},
		{`{"type":"react","client_id":"a","target":3,"emoji":"👍"}`, ""},
		{`{"type":"react","client_id":"a","target":0,"emoji":"👍"}`, codeBadRequest},
		{`{"type":"react","client_id":"a","target":3,"emoji":"` + strings.Repeat("👍", 9) + `"}`, codeTooLong},
		{`{"type":"delete","target":3}`, ""},
		{`{"type":"delete"}`, codeBadRequest},
		{`{"type":"moderate","action":"ban","identity":"bob","seconds":60}`, ""},
		{`{"type":"moderate","action":"ban","identity":""}`, codeBadRequest},
		{`{"type":"moderate","action":"kick","identity":"bob"}`, codeBadRequest},
		{`{"type":"moderate","action":"mute","identity":"bob","seconds":-5}`, codeBadRequest},
		{`{"type":"slow_mode","seconds":0}`, ""},
		{`{"type":"slow_mode"}`, codeBadRequest},
		{`{"type":"slow_mode","seconds":86401}`, codeBadRequest},
		{`{"type":"anonymous_read","allow":false}`, ""},
		{`{"type":"anonymous_read"}`, codeBadRequest},
		{`{"type":"anonymous_read","allow":"no"}`, codeBadRequest},
		{`{"type":"poll_create","question":"q","options":["a","b"],"duration_s":60}`, ""},
		{`{"type":"poll_create","question":"q","options":["a"]}`, codeBadRequest},
		{`{"type":"poll_create","question":"q","options":["a","b","c","d","e","f","g","h","i","j","k"]}`, codeBadRequest},
		{`{"type":"poll_create","question":"q","options":["a",""]}`, codeBadRequest},
		{`{"type":"poll_create","question":"","options":["a","b"]}`, codeBadRequest},
		{`{"type":"poll_create","question":"` + strings.Repeat("q", 501) + `","options":["a","b"]}`, codeTooLong},
		{`{"type":"poll_create","question":"q","options":["a","` + strings.Repeat("o", 201) + `"]}`, codeTooLong},
		{`{"type":"poll_create","question":"q","options":["a","b"],"duration_s":-1}`, codeBadRequest},
		{`{"type":"vote","poll":"p","option":0}`, ""},
		{`{"type":"vote","poll":"p"}`, codeBadRequest},
		{`{"type":"vote","option":1}`, codeBadRequest},
		{`{"type":"vote","poll":"p","option":-1}`, codeBadOption},
		{`{"type":"poll_close","poll":"p"}`, ""},
		{`{"type":"poll_close"}`, codeBadRequest},
		{`{"type":"ping"}`, ""},
		{`{"type":"PING"}`, codeUnknownType},
		{`{}`, codeBadRequest},
		{`null`, codeBadRequest},
		{`"send"`, codeBadRequest},
		{`{"type":1}`, codeBadRequest},
		{``, codeBadRequest},
	} {
		_, err := decode([]byte(tc.frame), 10)
		got := ""
		if err != nil {
			got = err.Code
		}
		if got != tc.code {
			t.Errorf("%.80s: got %q (%v), want %q", tc.frame, got, err, tc.code)
		}
	}
}

func TestDecodeEchoesOnlyAPlausibleClientID(t *testing.T) {
	_, err := decode([]byte(`{"type":"send","client_id":"a-1"}`), 10)
	if err == nil || err.ClientID != "a-1" {
		t.Fatalf("error %+v does not echo client_id a-1", err)
	}
	_, err = decode([]byte(`{"type":"send","client_id":"`+strings.Repeat("x", 100)+`"}`), 10)
	if err == nil || err.ClientID != "" {
		t.Fatalf("error %+v echoes an oversized client_id", err)
	}
}

func TestEncodeKeepsHTMLAsIs(t *testing.T) {
	got := string(encode(eventMsg{Type: "event", Event: &Event{Seq: 1, Kind: KindMessage, Text: `<script>alert("&")</script>`}}))
	if !strings.Contains(got, `"text":"<script>alert(\"&\")</script>"`) {
		t.Fatalf("encoded %s", got)
	}
}

// FuzzDecode feeds the decoder arbitrary frames: it must not panic, a
// request it accepts must hold what its type needs, and its errors must
// encode to valid JSON.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"type":"hello","token":"eyJhbGciOiJIUzI1NiJ9.e30.x","since":41,"history":50}`,
		`{"type":"send","client_id":"a-17","text":"hello <b>world</b>"}`,
		`{"type":"react","client_id":"a-18","target":8,"emoji":"👍"}`,
		`{"type":"delete","client_id":"d","target":8}`,
		`{"type":"moderate","action":"mute","identity":"bob","seconds":600}`,
		`{"type":"slow_mode","seconds":10}`,
		`{"type":"anonymous_read","allow":true}`,
		`{"type":"poll_create","question":"Best?","options":["a","b"],"duration_s":60}`,
		`{"type":"vote","poll":"9f2c4e1a7b30","option":1}`,
		`{"type":"poll_close","poll":"9f2c4e1a7b30"}`,
		`{"type":"ping","client_id":"p"}`,
		`{"type":"send","client_id":"\ud800","text":"\xff"}`,
		`{"type":"vote","poll":"p","option":1e400}`,
		`[`, `{}`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decode(data, defaultMaxText)
		if err != nil {
			if err.Code == "" || err.Message == "" {
				t.Fatalf("error without code or message: %+v", err)
			}
			if len(err.ClientID) > maxClientID {
				t.Fatalf("echoes a client_id of %d bytes", len(err.ClientID))
			}
			if !json.Valid(errorFrame(err)) {
				t.Fatalf("error frame is not JSON: %s", errorFrame(err))
			}
			return
		}
		if len(r.ClientID) > maxClientID {
			t.Fatalf("accepted a client_id of %d bytes", len(r.ClientID))
		}
		switch r.Type {
		case "send":
			if r.ClientID == "" || r.Text == "" || utf8.RuneCountInString(r.Text) > defaultMaxText {
				t.Fatalf("accepted send %+v", r)
			}
		case "react":
			if r.ClientID == "" || r.Target == 0 || r.Emoji == "" || len(r.Emoji) > maxEmoji {
				t.Fatalf("accepted react %+v", r)
			}
		case "delete":
			if r.Target == 0 {
				t.Fatalf("accepted delete %+v", r)
			}
		case "moderate":
			if r.Identity == "" || (r.Seconds != nil && *r.Seconds < 0) {
				t.Fatalf("accepted moderate %+v", r)
			}
		case "slow_mode":
			if r.Seconds == nil || *r.Seconds < 0 {
				t.Fatalf("accepted slow_mode %+v", r)
			}
		case "anonymous_read":
			if r.Allow == nil {
				t.Fatalf("accepted anonymous_read %+v", r)
			}
		case "poll_create":
			if len(r.Options) < minOptions || len(r.Options) > maxOptions || r.Question == "" {
				t.Fatalf("accepted poll_create %+v", r)
			}
		case "vote":
			if r.Poll == "" || r.Option == nil || *r.Option < 0 {
				t.Fatalf("accepted vote %+v", r)
			}
		case "poll_close":
			if r.Poll == "" {
				t.Fatalf("accepted poll_close %+v", r)
			}
		case "hello", "ping":
		default:
			t.Fatalf("accepted type %q", r.Type)
		}
		if !json.Valid(encode(ackMsg{Type: "ack", ClientID: r.ClientID, Poll: r.Poll})) {
			t.Fatalf("ack for %+v is not JSON", r)
		}
	})
}
