package rtpsrc

import "github.com/starling-sfu/starling/whipclient"

// Errors a WHEP endpoint's refusal matches with errors.Is.
var (
	ErrUnauthorized = whipclient.ErrUnauthorized
	ErrForbidden    = whipclient.ErrForbidden
	ErrNotFound     = whipclient.ErrNotFound
)

// StatusError is a WHEP endpoint's answer other than the one expected.
type StatusError = whipclient.StatusError
