package signaling

import (
	"errors"
	"fmt"
	"strings"
)

// sdpFrag is a parsed application/trickle-ice-sdpfrag body (RFC 8840): ICE
// credentials, and candidates grouped by media section.
type sdpFrag struct {
	ufrag, pwd      string
	candidates      []fragCandidate
	endOfCandidates bool
}

type fragCandidate struct {
	mid       string
	candidate string // "candidate:..." as in an a= line, without "a="
}

// maxFragLines bounds how much of a PATCH body is considered.
const maxFragLines = 500

// parseSDPFrag parses an SDP fragment. It accepts session-level ICE
// attributes and m= sections with a=mid; unknown lines are ignored.
func parseSDPFrag(body string) (sdpFrag, error) {
	var f sdpFrag
	lines := strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n")
	if len(lines) > maxFragLines {
		return f, fmt.Errorf("sdpfrag: more than %d lines", maxFragLines)
	}
	mid, inMedia := "", false
	for _, line := range lines {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "m="):
			inMedia, mid = true, ""
		case strings.HasPrefix(line, "a=mid:"):
			mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
			if !iceChars(f.ufrag) {
				return f, fmt.Errorf("sdpfrag: malformed ice-ufrag %q", truncate(f.ufrag, 80))
			}
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.pwd = strings.TrimPrefix(line, "a=ice-pwd:")
			if !iceChars(f.pwd) {
				return f, errors.New("sdpfrag: malformed ice-pwd")
			}
		case strings.HasPrefix(line, "a=candidate:"):
			c := strings.TrimPrefix(line, "a=")
			if len(strings.Fields(c)) < 8 {
				return f, fmt.Errorf("sdpfrag: malformed candidate %q", truncate(c, 80))
			}
			if inMedia && mid == "" {
				return f, errors.New("sdpfrag: candidate in a media section without a=mid")
			}
			f.candidates = append(f.candidates, fragCandidate{mid: mid, candidate: c})
		case line == "a=end-of-candidates":
			f.endOfCandidates = true
		case len(line) < 2 || line[1] != '=':
			return f, fmt.Errorf("sdpfrag: not an SDP line: %q", truncate(line, 80))
		}
	}
	return f, nil
}

// iceChars reports whether s is a non-empty run of RFC 8839 ice-chars
// (ALPHA / DIGIT / "+" / "/"), the only characters ICE credentials may hold:
// they are written back into an SDP when ICE restarts.
func iceChars(s string) bool {
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '+', c == '/':
		default:
			return false
		}
	}
	return s != ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
