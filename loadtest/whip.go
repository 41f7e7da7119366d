package loadtest

import (
	"net/url"

	"github.com/starling-sfu/starling/whipclient"
)

// StatusError is a non-2xx answer from a WHIP/WHEP endpoint.
type StatusError = whipclient.StatusError

// Session is a created WHIP or WHEP resource.
type Session = whipclient.Session

// withQuery adds query parameters to a URL.
func withQuery(raw string, q url.Values) (string, error) {
	if len(q) == 0 {
		return raw, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	v := u.Query()
	for k, vs := range q {
		for _, x := range vs {
			v.Add(k, x)
		}
	}
	u.RawQuery = v.Encode()
	return u.String(), nil
}
