package signaling

import "strings"

// iceUfrag returns the first a=ice-ufrag value of an SDP.
func iceUfrag(sdp string) string { return sdpAttr(sdp, "ice-ufrag") }

func sdpAttr(sdp, name string) string {
	for _, line := range strings.Split(sdp, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a="+name+":"); ok {
			return v
		}
	}
	return ""
}

// withICECredentials rewrites every ice-ufrag and ice-pwd line of sdp.
func withICECredentials(sdp, ufrag, pwd string) string {
	lines := strings.Split(sdp, "\n")
	for i, line := range lines {
		cr := strings.HasSuffix(line, "\r")
		switch t := strings.TrimSpace(line); {
		case strings.HasPrefix(t, "a=ice-ufrag:"):
			lines[i] = "a=ice-ufrag:" + ufrag
		case strings.HasPrefix(t, "a=ice-pwd:"):
			lines[i] = "a=ice-pwd:" + pwd
		default:
			continue
		}
		if cr {
			lines[i] += "\r"
		}
	}
	return strings.Join(lines, "\n")
}

// withoutCandidates drops every a=candidate and a=end-of-candidates line of sdp.
func withoutCandidates(sdp string) string {
	lines := strings.SplitAfter(sdp, "\n")
	kept := lines[:0]
	for _, line := range lines {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "a=candidate:") || t == "a=end-of-candidates" {
			continue
		}
		kept = append(kept, line)
	}
	return strings.Join(kept, "")
}
